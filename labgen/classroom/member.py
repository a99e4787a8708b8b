"""A second LXD cluster member on this host: a container with nesting that runs an lxd of its own, on the
cluster's bridge (lxdhost.MGMT), joined with a token and a join preseed. Seats then land on both members.
The lxd tier proves the cluster with it; a trainer can try a cluster on one server the same way.

`python3 -m labgen.classroom.member add NAME ADDRESS` / `remove NAME` (root). The member's image is the
seat image's packages plus lxd's, built and cached like it (seatimage.py)."""

from __future__ import annotations

import ipaddress
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import BackendFailed, LabError
from . import seatimage
from .lxd import lxc
from .lxdhost import MGMT, PORT, address, bridge_address, query

IDS = 2_000_000  # the member's own host ids (isolated): its seats take 65536 each, isolated too
# lxd's postinst gives root 10000001 ids from 100000: more than the member has, so its lxd would run
# privileged containers only ("LXD doesn't have a uid/gid allocation")
SUBID = f"root:65536:{IDS - 65536}\n"
# Where a host mounts cgroup v1's cpu and cpuacct apart (this project's CI hosts do), the member's systemd
# tries them joined, fails, and leaves symlinks to an empty `cpu,cpuacct`: the nested lxc then cannot start
# a container ("Failed to open 6/cpuacct": Not a directory). Before lxd, mount each such one alone.
CGROUPS = """#!/bin/sh
set -eu
cd /sys/fs/cgroup
fixed=
for c in $(sed -n 's/^[0-9]*:\\([a-z_]*\\):.*/\\1/p' /proc/self/cgroup); do
  [ -L "$c" ] || continue
  [ -n "$fixed" ] || mount -o remount,rw /sys/fs/cgroup
  fixed=yes
  rm "$c" && mkdir "$c" && mount -t cgroup -o "$c,nosuid,nodev,noexec" cgroup "$c"
done
[ -z "$fixed" ] || mount -o remount,ro /sys/fs/cgroup
"""
CGROUPS_UNIT = """[Unit]
Description=cgroup v1 controllers mounted as the host mounts them, for the nested lxd
DefaultDependencies=no
After=sys-fs-cgroup.mount
Before=lxd.service lxd.socket

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ovnlab-cgroups

[Install]
WantedBy=sysinit.target
"""
STATIC = "[Match]\nName=eth0\n[Network]\nAddress={address}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"


def _more(root: Path, chroot: Any) -> None:
    for name in ("subuid", "subgid"):
        (root / "etc" / name).write_text(SUBID)
    script = root / "usr/local/sbin/ovnlab-cgroups"
    script.write_text(CGROUPS)
    script.chmod(0o755)
    (root / "etc/systemd/system/ovnlab-cgroups.service").write_text(CGROUPS_UNIT)
    chroot("systemctl", "enable", "ovnlab-cgroups.service")


IMAGE = seatimage.Image(
    "ovn-lab-member",
    "member",
    # lxd's firewall is nft, its DHCP dnsmasq (a Recommends), and the seat image it unpacks is zstd
    (*seatimage.PACKAGES, "lxd", "dnsmasq-base", "nftables", "zstd"),
    "the seat's packages and lxd (ovn-lab, a second cluster member in a container)",
    _more,
)


def members() -> dict[str, dict[str, Any]]:
    return {m["server_name"]: m for m in query("/1.0/cluster/members?recursion=1") or []}


def add(name: str, addr: str, log: Any = print) -> None:
    """The member `name` at `addr` (on MGMT's subnet), made, started and joined; each step only when missing."""
    cluster, bridge = address(), bridge_address()
    if not bridge or cluster != f"{bridge.ip}:{PORT}" or ipaddress.ip_address(addr) not in bridge.network:
        raise BackendFailed(f"the cluster's address is {cluster or 'none'}, {MGMT} has {bridge}: a member in a "
                            f"container at {addr} needs the cluster on that bridge, and an address of its subnet",
                            "sudo scripts/setup --lxd-only (on a fresh LXD: its address cannot change)")  # fmt: skip
    seatimage.ensure_imported("default", IMAGE, log)
    inst = query(f"/1.0/instances/{name}")
    if inst is None:
        lxc("init", IMAGE.alias, name, "-c", "security.nesting=true", "-c", "security.idmap.isolated=true",
            "-c", f"security.idmap.size={IDS}")  # fmt: skip
        lxc("config", "device", "add", name, "eth0", "nic", "nictype=bridged", f"parent={MGMT}", "name=eth0")
        static = STATIC.format(address=f"{addr}/{bridge.network.prefixlen}")
        with tempfile.TemporaryDirectory() as tmp:
            for path, text in (("etc/hostname", f"{name}\n"), ("etc/systemd/network/eth0.network", static)):
                (Path(tmp) / "f").write_text(text)  # a stopped container takes files, not stdin
                lxc("file", "push", str(Path(tmp) / "f"), f"{name}/{path}")
    if (inst or {}).get("status") != "Running":
        lxc("start", name)
    deadline = time.monotonic() + 120
    while not lxc("exec", name, "--", "lxd", "waitready", "--timeout=2", check=False).ok:
        if time.monotonic() > deadline:
            raise BackendFailed(f"member {name}: its lxd does not answer", f"lxc exec {name} -- journalctl -u lxd")
        time.sleep(0.5)
    if name not in members():
        token = lxc("cluster", "add", name, "--quiet").out.strip()
        wanted = (query("/1.0/cluster") or {}).get("member_config", [])  # e.g. the dir pool's source
        seed = {"cluster": {
            "enabled": True, "server_name": name, "server_address": f"{addr}:{PORT}", "cluster_address": cluster,
            "cluster_token": token, "member_config": [{**c, "value": ""} for c in wanted],
        }}  # fmt: skip
        lxc("exec", name, "--", "lxd", "init", "--preseed", input=json.dumps(seed))
    wait_online(name)


def wait_online(name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (members().get(name) or {}).get("status") != "Online":
        if time.monotonic() > deadline:
            raise BackendFailed(f"member {name} is not online", "lxc cluster list")
        time.sleep(1)


def remove(name: str) -> None:
    """The member out of the cluster (with whatever it still holds), its container, and its image in LXD
    (the built file stays cached)."""
    if name in members():
        lxc("cluster", "remove", name, "--force", "--yes")
    if query(f"/1.0/instances/{name}") is not None:
        lxc("delete", "--force", name)
    image = query(f"/1.0/images/aliases/{IMAGE.alias}")
    if image:
        lxc("image", "delete", image["target"])


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["add"] and len(argv) == 3:
            add(argv[1], argv[2])
        elif argv[:1] == ["remove"] and len(argv) == 2:
            remove(argv[1])
        else:
            print("usage: python3 -m labgen.classroom.member add NAME ADDRESS | remove NAME", file=sys.stderr)
            return 2
    except LabError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
