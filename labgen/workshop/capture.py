"""`invoke capture`: a pcap of a node's geneve traffic or of one logical port, and a summary of it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from provision.core import prompt
from provision.facts import underlay_nic

from ..errors import InputError, LabError, UnknownName, visible
from ..lab import node_of, open_up_lab
from ..observe import Observer
from ..ui import console


def capture(config: str | Path, node: str, *, port: str | None = None, seconds: int | str = 10) -> Path:
    """A pcap of the node's geneve traffic on the underlay NIC (default) or of one logical port inside its
    namespace, copied into the lab's state directory, then a tcpdump summary that shows the geneve header."""
    if not (str(seconds).isascii() and str(seconds).isdigit()) or not 1 <= int(seconds) <= 3600:  # not '¹
        raise InputError(f"--seconds {str(seconds)[:20]!r} is not a capture time", "give whole seconds, 1 to 3600")
    seconds = int(seconds)
    lab, backend = open_up_lab(config)
    n = lab.node(node_of(lab, node))
    if port is not None:
        p = next((x for x in lab.ports if x.name == port), None)
        if p is None or p.node != node:
            raise UnknownName("port", port, [x.name for x in lab.ports_on(node)], f" on {node}")
        # provision's pcap, not tcpdump: tcpdump switches to its own user, which a user namespace lacks
        argv = ["ip", "netns", "exec", p.netns, *backend.provisioner(node), "pcap", p.name, str(seconds)]
        like = f"tcpdump -i {p.name} -w -"
        what = port
    else:
        links = Observer(lab, backend).fact(node, "addrs")
        nic = underlay_nic(links, ip=n.ip, mac=n.mac, netdev=backend.datapath == "netdev")
        if nic is None:
            raise LabError(f"{node}: cannot find the underlay NIC ({n.ip})")
        # geneve leaves the userspace datapath straight through the NIC, so capture there, not on br-phy
        argv = [*backend.provisioner(node), "pcap", nic["ifname"], str(seconds), "6081"]
        like = f"tcpdump -i {nic['ifname']} -w - udp port 6081"
        what = "geneve"
    path = backend.state.captures / f"{node}-{what}-{time.strftime('%Y%m%d-%H%M%S')}.pcap"
    console.print(f"{prompt(node, like)}  ({seconds} s)", markup=False)
    with path.open("wb") as f:
        try:
            r = subprocess.run(backend.node_argv(node, argv), stdout=f, stderr=subprocess.PIPE, timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            raise LabError(f"{node}: the capture did not end in {seconds + 60} s", f"see {path}") from None
    if r.returncode not in (0, 124) or path.stat().st_size == 0:
        raise LabError(f"{node}: the capture failed ({r.returncode}): {r.stderr.decode().strip()}")
    summary = subprocess.run(["tcpdump", "-r", str(path), "-n", "-v", "-c", "12"], capture_output=True, text=True)
    count = subprocess.run(["tcpdump", "-r", str(path), "-n", "-q"], capture_output=True, text=True)
    if summary.returncode and not summary.stdout.strip():  # not "no packets": tcpdump could not read it
        raise LabError(
            f"{node}: tcpdump cannot read {visible(str(path))}: {summary.stderr.strip()[-300:]}", "open it in Wireshark"
        )
    console.print(
        summary.stdout.rstrip()
        or '(no packets: start a ping, e.g. invoke exec ovn-host-01 "ip netns exec vm1 ping -c 5 10.0.0.13")',
        markup=False,
        highlight=False,
    )
    cut = f" (tcpdump: {count.stderr.strip()[-200:]})" if count.returncode else ""  # a truncated file
    console.print(
        f"{len(count.stdout.splitlines())} packets{cut}; open in Wireshark: {visible(str(path))}", markup=False
    )
    return path
