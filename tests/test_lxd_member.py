"""The classroom on a cluster of two (lxd tier, after the others: root, after `scripts/setup --lxd`): a second
member in a container with nesting that runs its own lxd (labgen/classroom/member.py), joined on the
cluster's host-only bridge. Seats land on both members; the member that does not hold the database stops,
its seats show as unreachable and the other member's seats go on; once it is back, `down` leaves nothing.
The member and everything it made are removed even when a test fails. The classroom is `mseat`; its
dashboard is watched in a headless Chromium while the member goes."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labgen.classroom import lxdhost, member
from tests import browser
from tests.e2e import ROOT, Cli
from tests.test_classroom_lxd import ARTIFACTS, MISSING, api, served, trainer, wait

pytestmark = [pytest.mark.lxd, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
NAME = "ovnlab-member"
PREFIX = "mseat"
PROJECT = f"ovn-classroom-{PREFIX}"
SSH_PORT, WEB_PORT = 22922, 28280
STATE = Path("/var/lib/ovn-classroom") / PREFIX / "state"
URL = f"http://127.0.0.1:{WEB_PORT}"


def lxc(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["lxc", *argv], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 or not check, f"lxc {' '.join(argv)}: {r.stderr}"
    return r


def here() -> str:
    return str(api("/1.0")["environment"]["server_name"])


@pytest.fixture(scope="module")
def second() -> Iterator[str]:
    """The member at the bridge's second address; removed at the end with whatever it holds."""
    bridge = lxdhost.bridge_address()
    if bridge is None or lxdhost.address() != f"{bridge.ip}:{lxdhost.PORT}":
        pytest.fail(f"the cluster is on {lxdhost.address()}, not on {lxdhost.MGMT}: run scripts/setup --lxd-only "
                    "on a fresh LXD (its address cannot change)")  # fmt: skip
    addr = str(bridge.ip + 1)
    try:
        t0 = time.monotonic()
        member.add(NAME, addr)
        print(f"\nmember {NAME} made and joined: {time.monotonic() - t0:.1f} s")
        yield addr
    finally:
        member.remove(NAME)
        assert NAME not in member.members()
        assert api(f"/1.0/instances/{NAME}") is None and api(f"/1.0/images/aliases/{member.IMAGE.alias}") is None


@pytest.fixture(scope="module")
def room(second: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """Seat 1 on this server, seat 2 on the member, each with its lab up and the demo done."""
    tmp = tmp_path_factory.mktemp("memberroom")
    text = (ROOT / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "netns"')
    text += f'\n[classroom]\nprefix = "{PREFIX}"\nengine = "lxd"\nssh_port = {SSH_PORT}\nweb_port = {WEB_PORT}\n'
    (tmp / "lab.toml").write_text(text)
    cli = Cli(tmp / "lab.toml")
    try:
        t0 = time.monotonic()
        cli("classroom.up", "--seats", "1", "--demo", "--target", here(), timeout=1200)
        cli("classroom.up", "--seats", "2", "--demo", "--target", NAME, timeout=1200)
        print(f"\ntwo seats on two members: {time.monotonic() - t0:.1f} s")
        yield cli
    finally:
        if api(f"/1.0/instances/{NAME}")["status"] != "Running":  # a test stopped it: down needs it back
            lxc("start", NAME)
            member.wait_online(NAME)
        cli("classroom.down", check=False, timeout=600)


@pytest.fixture(scope="module")
def chrome(room: Cli) -> Iterator[Any]:
    if browser.missing():
        pytest.skip(browser.missing())
    with served(room, URL) as driver:
        yield driver


def status(room: Cli) -> dict[str, dict[str, Any]]:
    return {r["seat"]: r for r in json.loads(room("classroom.status", "--json", timeout=300).stdout)["seats"]}


def ssh(rows: dict[str, dict[str, Any]], seat: str, command: str) -> subprocess.CompletedProcess[str]:
    """As the trainee and the web app reach a seat: ssh to the address and port its status row gives."""
    host, port = rows[seat]["ssh"].rsplit(":", 1)
    argv = ["ssh", "-p", port, "-i", str(STATE / "keys" / seat), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=10", "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}", f"{seat}@{host}",
            command]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


def test_seats_land_on_both_members(room: Cli, second: str) -> None:
    rows = status(room)
    assert {s: r["where"] for s, r in rows.items()} == {"mseat001": here(), "mseat002": NAME}, rows
    assert all(r["lab"] == "up" and r["leases"] == 3 and r["terminal"] for r in rows.values()), rows
    assert rows["mseat002"]["ssh"] == f"{second}:{SSH_PORT + 2}"  # the proxy listens in the member
    assert ipaddress.ip_address(rows["mseat001"]["ssh"].rsplit(":", 1)[0]).is_loopback  # the classroom's address
    for seat in rows:
        r = ssh(rows, seat, "hostname; invoke check")
        assert r.returncode == 0 and r.stdout.startswith(seat) and "0 problems" in r.stdout, r.stdout + r.stderr
    used = api(f"/1.0/instances/{NAME}/state")["memory"]["usage"] >> 20
    print(f"\nthe member with its lxd and one seat, lab up: {used} MiB")


def test_a_stopped_member_s_seats_are_unreachable_and_the_others_carry_on(room: Cli, chrome: Any) -> None:
    """On the dashboard (the web app watches each seat over ssh) and in `classroom.status`."""
    from selenium.webdriver.common.by import By

    roles = {m: r["roles"] for m, r in member.members().items()}
    assert "database" not in roles[NAME] and "database-leader" in roles[here()], roles
    trainer(chrome, URL, STATE)
    lab = lambda s: chrome.find_element(By.CSS_SELECTOR, f"#row-{s} .lab").text  # noqa: E731
    wait("both seats up on the dashboard", lambda: lab("mseat001") == lab("mseat002") == "✓ up (nodes running)")
    where = {s: chrome.find_element(By.CSS_SELECTOR, f"#row-{s} .where").text for s in ("mseat001", "mseat002")}
    assert where == {"mseat001": here(), "mseat002": NAME}
    t0 = time.monotonic()
    lxc("stop", NAME)  # its seats stop with it; its lxd starts them again when it is back
    wait("seat 2 unreachable on the dashboard", lambda: lab("mseat002").startswith("✗ unreachable"), timeout=120)
    print(f"\nmember stopped, its seat unreachable on the dashboard: {time.monotonic() - t0:.1f} s")
    assert lab("mseat001") == "✓ up (nodes running)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome.save_screenshot(str(ARTIFACTS / "lxd-member-gone.png"))
    t0 = time.monotonic()
    rows = status(room)
    print(f"\nthe room's status with the member stopped: {time.monotonic() - t0:.1f} s")
    assert rows["mseat002"]["lab"] == "?" and not rows["mseat002"]["terminal"], rows
    assert "error" in rows["mseat002"] and rows["mseat002"]["where"] == NAME, rows
    assert rows["mseat001"]["lab"] == "up" and rows["mseat001"]["terminal"], rows
    assert ssh(rows, "mseat002", "true").returncode == 255  # the web app's way in: nothing answers
    r = ssh(rows, "mseat001", "invoke check")
    assert r.returncode == 0 and "0 problems" in r.stdout, r.stdout + r.stderr
    t0 = time.monotonic()
    lxc("start", NAME)
    member.wait_online(NAME)
    deadline = time.monotonic() + 120
    while api(f"/1.0/instances/mseat002?project={PROJECT}")["status"] != "Running":  # its lxd starts it again
        assert time.monotonic() < deadline, "seat 2 did not start again with its member"
        time.sleep(1)
    print(f"\nmember back, its seat running: {time.monotonic() - t0:.1f} s")


def test_down_once_the_member_is_back(room: Cli) -> None:
    room("classroom.down", timeout=600)
    assert api(f"/1.0/projects/{PROJECT}") is None
    assert not Path(f"/var/lib/ovn-classroom/{PREFIX}").exists()
    inside = lxc("exec", NAME, "--", "lxc", "list", "--all-projects", "--format", "csv", "-c", "n").stdout
    assert PREFIX not in inside  # the member's own lxd holds nothing of the classroom either
