"""LXD on this host, as the classroom's `lxd` engine stands on it: the names `scripts/setup --lxd` gives
(storage pool, bridge, seat image, the cluster's own bridge), its preseed, and doctor's probes of it, each
with its fix.

State is read through `lxc query` (LXD's REST API as JSON), never through `lxc list`'s tables."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
import sys
from typing import Any

from ..backends.base import Probe
from ..errors import BackendFailed
from ..keys import default

POOL = "classroom"  # a `dir` pool: nothing to partition, works on any file system
BRIDGE = "classroombr0"
IMAGE = "ovn-lab-seat"  # the seat image's alias (seatimage.py)
PORT = 8443
# The cluster's address when the trainer gives none: a bridge of this host's own, with no port but members
# in containers (member.py). Nothing on the venue's network reaches it, unlike a NIC; unlike 127.0.0.1, a
# member in a container does; and it is not LXD's, so deleting LXD's networks never takes the cluster's.
MGMT = "ovnlab-mgmt0"
NFT_TABLE = "ovnlab-mgmt"
SETUP = "sudo scripts/setup --lxd-only"


def preseed(subnet: ipaddress.IPv4Network, address: str, member: str, *, cluster: bool) -> dict[str, Any]:
    """`lxd init --preseed` (JSON is YAML): the pool, the bridge on `subnet` (its first address is the
    host's), the default profile's disk and NIC, and, with `cluster`, a single-member cluster on `address`.
    The bridge neither NATs nor routes: seats reach each other and the host, nothing beyond."""
    gateway = f"{next(subnet.hosts())}/{subnet.prefixlen}"
    seed: dict[str, Any] = {
        "config": {"core.https_address": f"{address}:{PORT}", "images.auto_update_interval": "0"},
        "storage_pools": [{"name": POOL, "driver": "dir"}],
        "networks": [
            {
                "name": BRIDGE,
                "type": "bridge",
                "config": {
                    "ipv4.address": gateway,
                    "ipv4.nat": "false",
                    "ipv4.routing": "false",  # else LXD sets net.ipv4.ip_forward=1
                    "ipv6.address": "none",
                },
            }
        ],
        "profiles": [
            {
                "name": "default",
                "devices": {
                    "root": {"path": "/", "pool": POOL, "type": "disk"},
                    "eth0": {"name": "eth0", "network": BRIDGE, "type": "nic"},
                },
            }
        ],
    }
    if cluster:
        seed["cluster"] = {"server_name": member, "enabled": True}
    return seed


def mgmt_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Interface:
    """The host's address on the cluster's bridge: the subnet's first (members in containers take the next)."""
    return ipaddress.IPv4Interface(f"{next(subnet.hosts())}/{subnet.prefixlen}")


def make_bridge(subnet: ipaddress.IPv4Network) -> str:
    """The cluster's bridge MGMT with the host's address on it (made when missing), kept host-only by an
    nftables table of its own: the address answers on lo and the bridge only, and nothing is forwarded
    between the bridge and anything else. The address, for `lxd init`."""
    addr = mgmt_address(subnet)
    if subprocess.run(["ip", "link", "show", MGMT], capture_output=True).returncode:
        _ip("link", "add", MGMT, "type", "bridge")
    _ip("addr", "replace", str(addr), "dev", MGMT)
    _ip("link", "set", MGMT, "up")
    rules = f"""table inet {NFT_TABLE} {{}}
delete table inet {NFT_TABLE}
table inet {NFT_TABLE} {{
  chain input {{
    type filter hook input priority 0; policy accept;
    ip daddr {addr.ip} iifname != {{ "lo", "{MGMT}" }} drop
  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    iifname "{MGMT}" oifname != "{MGMT}" drop
    oifname "{MGMT}" iifname != "{MGMT}" drop
  }}
}}
"""
    r = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True)
    if r.returncode:
        raise BackendFailed(f"nft: {r.stderr.strip()[-300:]}", "is nftables installed? (apt-get install nftables)")
    return str(addr.ip)


def _ip(*argv: str) -> None:
    r = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if r.returncode:
        raise BackendFailed(f"ip {' '.join(argv)}: {r.stderr.strip()}", "sudo invoke doctor")


def bridge_address() -> ipaddress.IPv4Interface | None:
    """The host's IPv4 address on MGMT, from `ip -j addr`; None without the bridge."""
    r = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", MGMT], capture_output=True, text=True)
    links = json.loads(r.stdout or "[]") if r.returncode == 0 else []
    addrs = [f"{a['local']}/{a['prefixlen']}" for link in links for a in link.get("addr_info", [])]
    return ipaddress.IPv4Interface(addrs[0]) if addrs else None


def query(path: str, timeout: float = 30) -> Any:
    """GET `path` of LXD's API (e.g. /1.0/networks/NAME); None when it does not exist. BackendFailed when
    LXD cannot be asked at all."""
    try:
        r = subprocess.run(["lxc", "query", path], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendFailed(f"lxc query {path}: {e}", SETUP) from e
    if r.returncode:
        err = r.stderr.strip()
        if "not found" in err.lower():
            return None
        raise BackendFailed(f"lxc query {path}: {err[-300:] or f'exit {r.returncode}'}", SETUP)
    return json.loads(r.stdout)


def classrooms() -> list[str]:
    """The LXD projects of classrooms on this host (`ovn-classroom-*`); none where LXD is absent or silent."""
    if not shutil.which("lxc"):
        return []
    try:
        projects = query("/1.0/projects", timeout=10) or []
    except BackendFailed:
        return []
    return [name for p in projects if (name := p.rsplit("/", 1)[-1]).startswith("ovn-classroom-")]


def bridge_problem(net: dict[str, Any] | None, subnet: ipaddress.IPv4Network | None = None) -> str | None:
    """What is wrong with the seats' bridge, as `GET /1.0/networks/BRIDGE` shows it."""
    if net is None:
        return f"no network {BRIDGE}"
    cfg = net.get("config", {})
    wrong = [k for k in ("ipv4.nat", "ipv4.routing") if cfg.get(k, "true") != "false"]
    if wrong:
        return f"{BRIDGE} has {' and '.join(wrong)} on: seats would reach beyond the host"
    addr = cfg.get("ipv4.address", "")
    if subnet is not None and addr and ipaddress.IPv4Interface(addr).network != subnet:
        return f"{BRIDGE} is on {addr}, not on classroom.lxd_subnet {subnet}"
    return None


def cluster_problem(
    cluster: dict[str, Any] | None, address: str = "", subnet: ipaddress.IPv4Network | None = None
) -> str | None:
    """Clustering off, or its address on the seats' bridge: deleting the bridge would take LXD's database."""
    if not cluster or not cluster.get("enabled"):
        return "clustering is off"
    host = address.rpartition(":")[0].strip("[]")
    if subnet is not None and host and ipaddress.ip_address(host) in subnet:
        return f"the cluster's address {address} is on the seats' bridge {BRIDGE}"
    return None


def address() -> str:
    """This member's cluster address (host:port), "" when it has none."""
    cfg = (query("/1.0") or {}).get("config", {})
    return str(cfg.get("cluster.https_address") or cfg.get("core.https_address") or "")


def mgmt_problem(address: str, subnet: ipaddress.IPv4Network | None) -> str | None:
    """A cluster on the host-only bridge's subnet whose bridge or address is gone (after a reboot)."""
    host = address.rpartition(":")[0].strip("[]")
    if subnet is None or not host or ipaddress.ip_address(host) not in subnet:
        return None
    have = bridge_address()
    if have and str(have.ip) == host:
        return None
    return f"the cluster's address {host} is not on {MGMT} ({have or 'no such bridge'})"


def probes(subnet: ipaddress.IPv4Network | None = None, cluster: ipaddress.IPv4Network | None = None) -> list[Probe]:
    """What the lxd engine needs of this host. Each probe asks LXD itself; one that cannot ask says why."""

    def asked(fn: Any) -> Any:
        def check() -> str | None:
            try:
                return fn()  # type: ignore[no-any-return]
            except BackendFailed as e:
                return e.message

        return check

    def installed() -> str | None:
        gone = [t for t in ("lxd", "lxc") if not shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin")]
        return f"missing: {', '.join(gone)}" if gone else None

    def daemon() -> str | None:
        return None if query("/1.0") else "lxd does not answer"

    def version() -> str:
        env = (query("/1.0") or {}).get("environment", {})
        return f"LXD {env.get('server_version', '?')}, {env.get('driver', '?')}"

    def pool() -> str | None:
        p = query(f"/1.0/storage-pools/{POOL}")
        return f"no storage pool {POOL}" if p is None else None

    def image() -> str | None:
        return None if query(f"/1.0/images/aliases/{IMAGE}") else f"no image {IMAGE}"

    return [
        Probe("installed", installed, "sudo scripts/setup --lxd (Debian 12's `lxd` package)"),
        Probe(
            "daemon",
            asked(daemon),
            f"{SETUP} (starts lxcfs and lxd where there is no systemd); as a user: be root, since the "
            "lxd group is as good as root",
            detail=version,
        ),
        Probe("storage pool", asked(pool), SETUP, detail=lambda: f"{POOL} (dir)"),
        Probe(
            "bridge",
            asked(lambda: bridge_problem(query(f"/1.0/networks/{BRIDGE}"), subnet)),
            f"{SETUP} (or: lxc network set {BRIDGE} ipv4.nat=false ipv4.routing=false)",
            detail=lambda: f"{BRIDGE}, no NAT, no routing",
        ),
        Probe(
            "clustering",
            asked(lambda: cluster_problem(query("/1.0/cluster"), address(), subnet)),
            f"{SETUP} (on a bridge: a new member's preseed with the address of a host NIC)",
            detail=lambda: f"member {(query('/1.0') or {}).get('environment', {}).get('server_name')} on {address()}",
        ),
        Probe(
            "cluster bridge",
            asked(lambda: mgmt_problem(address(), cluster)),
            f"{SETUP} (remakes {MGMT}; then restart lxd if it started without the address)",
            detail=lambda: f"{MGMT} {bridge_address() or '(none: the cluster is elsewhere)'}",
        ),
        Probe("seat image", asked(image), "sudo invoke classroom.image", detail=lambda: IMAGE),
    ]


def taken(subnet: ipaddress.IPv4Network, key: str = "classroom.lxd_subnet", own: str = BRIDGE) -> list[str]:
    """Host routes `subnet` would collide with (those of its own bridge `own` aside), from `ip -j -4 route`."""
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    found = []
    for r in json.loads(out.stdout or "[]"):
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("dev") == own or r.get("type") in ("local", "broadcast"):
            continue
        if ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False).overlaps(subnet):
            found.append(f"{key} {subnet} overlaps the host route {dst} on {r.get('dev')}")
    return found


def main(argv: list[str]) -> int:
    """`python3 -m labgen.classroom.lxdhost preseed LAB_TOML|"" ADDRESS`: the preseed scripts/setup applies
    (without its cluster part where this host is a cluster member already), or nothing when LXD is set up
    already. `... bridge LAB_TOML|""`: makes the cluster's bridge (make_bridge) and prints its address.
    Exit 2 when the subnet is taken."""
    from .config import load_classroom

    what, config, *rest = argv
    room = load_classroom(config) if config else None
    key = "lxd_subnet" if what == "preseed" else "lxd_cluster_subnet"
    subnet = ipaddress.IPv4Network(getattr(room, key) if room else default(f"classroom.{key}"))
    clash = taken(subnet, f"classroom.{key}", BRIDGE if what == "preseed" else MGMT)
    if clash:
        print("; ".join(clash) + f"; fix: set [classroom] {key} in lab.toml to a free subnet", file=sys.stderr)
        return 2
    if what == "bridge":
        print(make_bridge(subnet))
        return 0
    address = rest[0]
    ipaddress.ip_address(address)
    clustered = cluster_problem(query("/1.0/cluster")) is None
    if (
        clustered
        and query(f"/1.0/storage-pools/{POOL}")
        and not bridge_problem(query(f"/1.0/networks/{BRIDGE}"), subnet)
    ):
        return 0  # initialized already: a second setup changes nothing
    print(json.dumps(preseed(subnet, address, socket.gethostname(), cluster=not clustered), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
