"""Packet capture, snapshots and ssh access for a running lab."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from provision.facts import underlay_nic

from .gates import Gates
from .orchestrate import LabError, demo, open_up_lab, teardown, up
from .ui import console


def capture(config: str, node: str, *, port: str | None = None, seconds: int = 10) -> Path:
    """A pcap of the node's geneve traffic on the underlay NIC (default) or of one logical port inside its
    namespace, copied into the lab's state directory, then a tcpdump summary that shows the geneve header."""
    lab, b = open_up_lab(config)
    if node not in lab.node_names:
        raise LabError(f"no node {node!r}; nodes: {', '.join(lab.node_names)}")
    n = lab.node(node)
    if port:
        p = next((x for x in lab.ports if x.name == port), None)
        if p is None or p.node != node:
            where = f"it is on {p.node}" if p else f"ports: {', '.join(x.name for x in lab.ports)}"
            raise LabError(f"{port} is not a port on {node} ({where})")
        argv = ["ip", "netns", "exec", p.netns, "timeout", str(seconds), "tcpdump", "-U", "-n", "-i", p.name, "-w", "-"]
        what = port
    else:
        links = Gates(lab, b).fact(node, "addrs")
        nic = underlay_nic(links, ip=n.ip, mac=n.mac, netdev=b.datapath == "netdev")
        if nic is None:
            raise LabError(f"{node}: cannot find the underlay NIC ({n.ip})")
        # geneve leaves the userspace datapath straight through the NIC, so capture there, not on br-phy
        argv = ["timeout", str(seconds), "tcpdump", "-U", "-n", "-i", nic["ifname"], "-w", "-", "udp", "port", "6081"]
        what = "geneve"
    out_dir = lab.state_dir / "captures"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{node}-{what}-{time.strftime('%Y%m%d-%H%M%S')}.pcap"
    console.print(f"{node} # {' '.join(argv[:-1] if argv[-1] == '-' else argv)}  ({seconds} s)", markup=False)
    with path.open("wb") as f:
        r = subprocess.run(b.node_argv(node, argv), stdout=f, stderr=subprocess.PIPE, timeout=seconds + 60)
    if r.returncode not in (0, 124) or path.stat().st_size == 0:
        raise LabError(f"{node}: tcpdump failed ({r.returncode}): {r.stderr.decode().strip()}")
    summary = subprocess.run(["tcpdump", "-r", str(path), "-n", "-v", "-c", "12"], capture_output=True, text=True)
    console.print(
        summary.stdout.rstrip()
        or '(no packets: start a ping, e.g. invoke exec ovn-host-01 "ip netns exec vm1 ping -c 5 10.0.0.13")',
        markup=False,
        highlight=False,
    )
    count = subprocess.run(["tcpdump", "-r", str(path), "-n", "-q"], capture_output=True, text=True).stdout
    console.print(f"{len(count.splitlines())} packets; open in Wireshark: {path}")
    return path


SNAP = "ovn-lab-saved"


def snapshot(config: str, action: str) -> None:
    lab, b = open_up_lab(config)
    t0 = time.monotonic()
    marker = lab.state_dir / "snapshot.json"
    if b.name == "vagrant":
        from .backends.vagrant import VagrantBackend

        assert isinstance(b, VagrantBackend)
        v = b.vagrant(b.log_dir / "vagrant-snapshot.log")
        if action == "save":
            v.snapshot_save(SNAP)  # every VM of the Vagrantfile
        elif action == "restore":
            if not marker.exists():
                raise LabError("no snapshot saved: invoke snapshot save")
            v.snapshot_restore(SNAP)
            b.close_ssh()  # the restored VMs know nothing of the old ssh master connections
        else:
            raise LabError("usage: invoke snapshot save|restore")
    else:  # netns: nothing to freeze; a rebuild is seconds
        if action == "save":
            switches = Gates(lab, b).fact(lab.central.name, "nb_switches")
            demo_done = any(s["name"] == sw.name for s in switches for sw in lab.switches)
            marker.write_text(json.dumps({"demo": demo_done}) + "\n")
        elif action == "restore":
            if not marker.exists():
                raise LabError("no snapshot saved: invoke snapshot save")
            demo_done = json.loads(marker.read_text())["demo"]
            teardown(config)
            up(config, "netns")
            if demo_done:
                demo(config)
            marker.write_text(json.dumps({"demo": demo_done}) + "\n")
        else:
            raise LabError("usage: invoke snapshot save|restore")
    if action == "save" and b.name == "vagrant":
        marker.write_text(json.dumps({"name": SNAP}) + "\n")
    console.print(f"snapshot {action} done in {time.monotonic() - t0:.1f} s")


def ssh_config(config: str) -> str:
    _, b = open_up_lab(config)
    try:
        return b.user_ssh_config()
    except RuntimeError as e:
        raise LabError(str(e)) from None
