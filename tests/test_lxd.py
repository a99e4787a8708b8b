"""The lxd tier: what the classroom's lxd engine stands on, against this host's real LXD (root, after
`scripts/setup --lxd`): setup is idempotent, its preseed's settings hold, the seats' bridge neither NATs nor
routes, doctor's LXD probes pass, and a container from the seat image boots with nesting and has the lab's
tools. The image is built once (minutes) and cached; the test's container is removed even when a test fails."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labgen.classroom import lxdhost, seatimage
from labgen.keys import default
from tests.e2e import ROOT

MISSING = (
    "the lxd tier runs as root"
    if os.geteuid()
    else ("no LXD: run scripts/setup --lxd" if not shutil.which("lxd") else "")
)
pytestmark = [pytest.mark.lxd, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
SEAT = "ovnlab-lxdtest"  # the test's own container, in LXD's default project
USER = "trainee"
GATEWAY = str(next(ipaddress.IPv4Network(default("classroom.lxd_subnet")).hosts()))  # setup's default
CLUSTER = str(lxdhost.mgmt_address(ipaddress.IPv4Network(default("classroom.lxd_cluster_subnet"))).ip)


def lxc(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["lxc", *argv], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 or not check, f"lxc {' '.join(argv)}: {r.stderr}"
    return r


def api(path: str) -> Any:
    return json.loads(lxc("query", path).stdout)


def setup() -> str:
    r = subprocess.run(["bash", "scripts/setup", "--lxd-only"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def lxd_state() -> list[Any]:
    """The server's config, the bridge, the default profile and the cluster, as LXD's API has them."""
    server = api("/1.0")
    server["environment"].pop("server_pid")
    paths = (f"/1.0/networks/{lxdhost.BRIDGE}", f"/1.0/storage-pools/{lxdhost.POOL}", "/1.0/profiles/default")
    return [server, *(api(p) for p in paths), api("/1.0/cluster/members")]


def test_setup_twice_changes_nothing() -> None:
    setup()
    before = lxd_state()
    assert "initialized already" in setup()
    assert lxd_state() == before


def test_the_preseeds_settings() -> None:
    net = lxc("network", "show", lxdhost.BRIDGE).stdout
    for line in ('ipv4.nat: "false"', 'ipv4.routing: "false"', f"ipv4.address: {GATEWAY}/24", "ipv6.address: none"):
        assert line in net
    assert lxc("config", "get", "images.auto_update_interval").stdout.strip() == "0"
    assert lxc("config", "get", "cluster.https_address").stdout.strip() == f"{CLUSTER}:{lxdhost.PORT}"
    assert api("/1.0/cluster")["enabled"] is True
    assert api(f"/1.0/storage-pools/{lxdhost.POOL}")["driver"] == "dir"
    root = api("/1.0/profiles/default")["devices"]["root"]
    assert root["pool"] == lxdhost.POOL


def test_the_bridge_has_no_nat() -> None:
    """No masquerade for the seats' subnet in LXD's nftables table, and forwarding through the bridge refused."""
    table = subprocess.run(["nft", "list", "table", "inet", "lxd"], capture_output=True, text=True).stdout
    assert f"fwd.{lxdhost.BRIDGE}" in table
    assert "masquerade" not in table and "snat" not in table
    assert f'iifname "{lxdhost.BRIDGE}" reject' in table


def test_lxd_listens_on_the_clusters_own_bridge_only() -> None:
    """On the host-only bridge's address; nothing but lo and that bridge reaches it, nothing is forwarded."""
    lines = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout.splitlines()
    mine = [ln.split()[3] for ln in lines if '(("lxd",' in ln]
    assert mine == [f"{CLUSTER}:{lxdhost.PORT}"], mine
    assert str(lxdhost.bridge_address()) == f"{CLUSTER}/24"
    links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", lxdhost.MGMT], capture_output=True,
                                      text=True).stdout or "[]")  # fmt: skip
    assert links == []  # no port: setup adds none, only a member in a container would
    table = subprocess.run(["nft", "list", "table", "inet", lxdhost.NFT_TABLE], capture_output=True, text=True).stdout
    assert f'ip daddr {CLUSTER} iifname != {{ "lo", "{lxdhost.MGMT}" }} drop' in table, table
    assert f'iifname "{lxdhost.MGMT}" oifname != "{lxdhost.MGMT}" drop' in table, table


@pytest.fixture(scope="module")
def seat() -> Iterator[str]:
    """The seat image imported, and one container from it with nesting, booted; removed at the end."""
    seatimage.ensure_imported("default")
    lxc("delete", "--force", SEAT, check=False)
    try:
        t0 = time.monotonic()
        lxc("launch", lxdhost.IMAGE, SEAT, "-c", "security.nesting=true")
        state = ""
        for _ in range(120):
            state = lxc("exec", SEAT, "--", "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        print(f"\nlaunch -> systemd {state}: {time.monotonic() - t0:.1f} s")
        yield state
    finally:
        lxc("delete", "--force", SEAT, check=False)
    assert SEAT not in lxc("list", "--format", "csv", "-c", "n").stdout


def test_doctors_lxd_probes_pass(seat: str) -> None:
    for probe in lxdhost.probes():
        assert probe.check() is None, probe.name
    r = subprocess.run([".venv/bin/invoke", "doctor"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lxd = [ln for ln in r.stdout.splitlines() if " lxd: " in ln]
    assert len(lxd) == len(lxdhost.probes()) and all(ln.startswith("ok") for ln in lxd), lxd


def test_a_seat_boots_with_the_labs_tools(seat: str) -> None:
    assert seat in ("running", "degraded")
    failed = lxc("exec", SEAT, "--", "systemctl", "--failed", "--plain", "--no-legend").stdout
    assert not failed.strip(), failed
    for tool in ("python3", "ovs-vsctl", "ovn-nbctl", "tmux", "tini", "dhclient", "tcpdump", "sshd"):
        assert lxc("exec", SEAT, "--", "sh", "-c", f"command -v {tool}", check=False).returncode == 0, tool
    addr = lxc("exec", SEAT, "--", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f" {GATEWAY.rpartition('.')[0]}." in addr, addr  # a lease from LXD's dnsmasq: udev and networkd work
    info = api(f"/1.0/instances/{SEAT}/state")
    print(f"\nseat memory: {info['memory']['usage'] >> 20} MiB")


def test_an_ordinary_user_in_a_seat_gets_the_labs_namespaces(seat: str) -> None:
    """As an ordinary user through `lxc exec` (uid, gid, cwd, env): the lab keeper's own unshare, which
    needs security.nesting (lxcfs overmounts /proc)."""
    lxc("exec", SEAT, "--", "useradd", "-m", "-s", "/bin/bash", USER)
    uid = lxc("exec", SEAT, "--", "id", "-u", USER).stdout.strip()
    home = f"/home/{USER}"
    as_user = ["exec", SEAT, "--user", uid, "--group", uid, "--cwd", home, "--env", f"HOME={home}"]
    as_user += ["--env", f"USER={USER}", "--"]
    assert lxc(*as_user, "sh", "-c", 'echo "$(id -un) $PWD $HOME"').stdout.split() == [USER, home, home]
    argv = ["unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--mount-proc", "true"]
    r = lxc(*as_user, *argv, check=False)
    assert r.returncode == 0, r.stderr
