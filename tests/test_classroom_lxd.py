"""The classroom on the `lxd` engine (lxd tier: root, after `scripts/setup --lxd`): seats as containers in
the classroom's own LXD project, each with its lab up and the demo done; status, an exercise for all, a
reset; seats apart; and `classroom.down` leaving no instance, profile or project. The classroom is `lseat`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labgen.classroom import limits
from tests import browser
from tests.e2e import ROOT, Cli

MISSING = (
    "the lxd tier runs as root"
    if os.geteuid()
    else ("no LXD: run scripts/setup --lxd" if not shutil.which("lxd") else "")
)
pytestmark = [pytest.mark.lxd, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
PREFIX = "lseat"
PROJECT = f"ovn-classroom-{PREFIX}"
SEATS = ("lseat001", "lseat002", "lseat003")
SSH_PORT, WEB_PORT = 22822, 28180  # a seat's ssh: SSH_PORT + its number, a proxy device on its member
STATE = Path("/var/lib/ovn-classroom") / PREFIX / "state"
URL = f"http://127.0.0.1:{WEB_PORT}"
ARTIFACTS = ROOT / "tests" / "artifacts"


def api(path: str) -> Any:
    r = subprocess.run(["lxc", "query", path], capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout) if r.returncode == 0 else None


def in_seat(seat: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """As the seat's trainee, the way the engine runs a seat's commands."""
    home = f"/home/{seat}"
    return subprocess.run(
        ["lxc", "exec", seat, "--project", PROJECT, "--user", "1000", "--group", "1000", "--cwd", home,
         "--env", f"HOME={home}", "--env", "PATH=/opt/ovn-lab/bin:/opt/ovn-lab/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "--env", f"OVN_LAB_CONFIG={home}/lab.toml", "--", *argv],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def lab_toml(tmp: Path) -> Cli:
    text = (ROOT / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "netns"')
    text += f'\n[classroom]\nprefix = "{PREFIX}"\nengine = "lxd"\nssh_port = {SSH_PORT}\nweb_port = {WEB_PORT}\n'
    (tmp / "lab.toml").write_text(text)
    return Cli(tmp / "lab.toml")


def test_up_refuses_while_proc_hides_pids(tmp_path: Path) -> None:
    """An accounts classroom's /proc (hidepid=2 with the web account's gid=): LXD fails to start containers
    under it, so up says so first, with the fix, and leaves nothing that down cannot remove."""
    cli = lab_toml(tmp_path)
    before = limits.proc_options()
    subprocess.run(["mount", "-o", "remount,hidepid=2,gid=65534", "/proc"], check=True)
    try:
        r = cli("classroom.up", "--seats", "1", check=False)
    finally:  # a remount keeps the options it does not name: hidepid and gid named, back to what they were
        subprocess.run(["mount", "-o", f"remount,hidepid=0,gid=0,{before}", "/proc"], check=True)
        cli("classroom.down", timeout=300)
    assert limits.proc_options() == before
    assert r.returncode == 1 and "/proc is mounted with hidepid and gid=" in r.stderr, r.stdout + r.stderr
    assert api(f"/1.0/projects/{PROJECT}") is None


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    cli = lab_toml(tmp_path_factory.mktemp("lxdroom"))
    try:
        member = Path(api("/1.0/cluster/members")[0]).name  # placed there by --target, as a trainer pins seats
        cli("classroom.up", "--seats", str(len(SEATS)), "--demo", "--target", member, timeout=1800)
        yield cli
    finally:
        cli("classroom.down", check=False, timeout=600)


def test_seats_are_containers_with_their_labs_up(room: Cli) -> None:
    names = sorted(Path(u.split("?")[0]).name for u in api(f"/1.0/instances?project={PROJECT}") or [])
    assert names == list(SEATS)
    project = api(f"/1.0/projects/{PROJECT}")
    assert project["config"]["restricted"] == "true"
    profile = api(f"/1.0/profiles/default?project={PROJECT}")
    assert profile["config"]["security.nesting"] == "true" and profile["config"]["limits.memory"] == "768MiB"
    configs = [api(f"/1.0/instances/{s}?project={PROJECT}")["config"] for s in SEATS]
    hosts = {json.loads(c["volatile.idmap.current"])[0]["Hostid"] for c in configs}
    assert len(hosts) == len(SEATS)  # no two seats share a host uid
    doc = json.loads(room("classroom.status", "--json").stdout)
    assert {r["seat"]: r["lab"] for r in doc["seats"]} == dict.fromkeys(SEATS, "up"), doc
    assert all(r["leases"] == 3 and r["terminal"] for r in doc["seats"]), doc
    for seat in SEATS:
        r = in_seat(seat, "invoke", "check")
        assert r.returncode == 0 and "0 problems" in r.stdout, r.stdout + r.stderr


def test_seats_are_apart(room: Cli) -> None:
    """Each seat sees its own processes only, and the same names and subnets as the other."""
    procs = {seat: in_seat(seat, "ps", "-eo", "comm").stdout.split() for seat in SEATS}
    assert all("ovn-controller" in p for p in procs.values())
    ours = {seat: in_seat(seat, "ip", "netns", "exec", "vm1", "true").returncode for seat in SEATS}
    assert 0 not in ours.values(), ours  # the lab's namespaces are inside its own user namespace
    assert "lseat002" not in in_seat("lseat001", "cat", "/etc/hostname").stdout


def ssh(seat: str, command: str, key: str | None = None, port: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ssh_argv(seat, command, key, port), capture_output=True, text=True, timeout=60, check=False)


def ssh_argv(seat: str, command: str, key: str | None = None, port: int | None = None) -> list[str]:
    return ["ssh", "-p", str(port or SSH_PORT + int(seat[-3:])), "-i", str(STATE / "keys" / (key or seat)),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}",
            f"{seat}@127.0.0.1", command]  # fmt: skip


def test_ssh_reaches_each_seat_on_its_own_port(room: Cli) -> None:
    """The trainee's `ssh -p PORT SEAT@ADDRESS`: through the seat's proxy device, to the sshd in its
    container, which takes that seat with its own key only, into its tmux; status says where it runs."""
    r = ssh("lseat001", "id -un; hostname; tmux has-session -t lab && echo tmux")
    assert r.returncode == 0 and r.stdout.split() == ["lseat001", "lseat001", "tmux"], r.stdout + r.stderr
    assert ssh("lseat001", "true", key="lseat002").returncode == 255  # another seat's key
    assert ssh("lseat002", "true", port=SSH_PORT + 1).returncode == 255  # seat 1's port takes seat 1 only
    doc = json.loads(room("classroom.status", "--json").stdout)
    located = {s: api(f"/1.0/instances/{s}?project={PROJECT}")["location"] for s in SEATS}
    assert {r["seat"]: r["where"] for r in doc["seats"]} == located and doc["sshd"], doc
    assert {r["seat"]: r["ssh"] for r in doc["seats"]} == {s: f"127.0.0.1:{SSH_PORT + int(s[-3:])}" for s in SEATS}


@pytest.fixture(scope="module")
def chrome(room: Cli) -> Iterator[Any]:
    if browser.missing():
        pytest.skip(browser.missing())
    with served(room, URL) as driver:
        yield driver


@contextlib.contextmanager
def served(room: Cli, url: str) -> Iterator[Any]:
    """classroom.serve (unprivileged, on 127.0.0.1) and a headless Chromium that reaches only it."""
    log = (room.config.parent / "serve.log").open("ab")
    serve = subprocess.Popen([sys.executable, "-m", "invoke", "classroom.serve", "--config", str(room.config)],
                             cwd=ROOT, stdout=log, stderr=log)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="classroom-chromium-"))
    driver = None
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{url}/"):
            assert time.monotonic() < deadline, (room.config.parent / "serve.log").read_text()
            time.sleep(0.2)
        driver = browser.chromium(tmp)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        serve.terminate()
        serve.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def _answers(url: str) -> bool:
    with contextlib.suppress(OSError):
        urllib.request.urlopen(url, timeout=2)
        return True
    return False


def wait(what: str, ok: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def trainer(chrome: Any, url: str = URL, state: Path = STATE) -> None:
    """The dashboard, signed in with the trainer's token."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    chrome.get(f"{url}/trainer")
    for field in chrome.find_elements(By.ID, "token"):
        field.send_keys((state / "trainer-token").read_text() + Keys.ENTER)
    wait("the dashboard", lambda: chrome.find_elements(By.ID, "room"))


def test_a_trainee_in_the_browser_on_a_container_seat(room: Cli, chrome: Any) -> None:
    """The join code in the browser: the terminal of the seat's container, the tutorial's commands in it,
    and the trainer's dashboard with the seat's row read from that container's lab."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    codes = json.loads((STATE / "join-codes.json").read_text())
    chrome.get(f"{URL}/#" + urllib.parse.urlencode({"seat": "lseat002", "code": codes["lseat002"]}))
    chrome.find_element(By.ID, "code").send_keys(Keys.ENTER)
    wait("the terminal", lambda: chrome.find_element(By.ID, "term").get_attribute("data-state") == "connected")
    screen = lambda: str(chrome.execute_script(browser.SCREEN_JS))  # noqa: E731
    keys = chrome.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
    keys.send_keys("hostname; invoke ssh ovn-central-01" + Keys.ENTER)
    wait("the central node's shell", lambda: "root@ovn-central-01" in screen().split("invoke ssh")[-1])
    assert "\nlseat002\n" in screen()  # the container's hostname: the seat's own
    keys.send_keys("ovn-nbctl show" + Keys.ENTER)
    wait("net0 on the screen", lambda: "(net0)" in screen().split("ovn-nbctl show")[-1])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome.save_screenshot(str(ARTIFACTS / "lxd-seat.png"))
    trainer(chrome)
    wait("seat 2's chassis", lambda: chrome.find_element(By.CSS_SELECTOR, "#row-lseat002 .chassis").text == "3")
    located = {s: api(f"/1.0/instances/{s}?project={PROJECT}")["location"] for s in SEATS}
    assert {s: chrome.find_element(By.CSS_SELECTOR, f"#row-{s} .where").text for s in SEATS} == located
    chrome.save_screenshot(str(ARTIFACTS / "lxd-dashboard.png"))


def test_an_exercise_for_all_and_a_reset(room: Cli) -> None:
    out = room("classroom.exercise", "controller-stopped", "--all").stdout
    assert out.count("✓ exercise controller-stopped") == len(SEATS), out
    for seat in SEATS:
        r = in_seat(seat, "invoke", "check")
        assert r.returncode == 1 and "ovn-controller is not running" in r.stdout, r.stdout
    room("classroom.reset", "--all", timeout=600)  # back to just after up: the daemons run again
    for seat in SEATS:
        r = in_seat(seat, "invoke", "check")
        assert "ovn-controller is not running" not in r.stdout and "controller" in r.stdout, r.stdout


def test_a_seat_that_is_gone_shows_unreachable_and_the_others_carry_on(room: Cli, chrome: Any) -> None:
    """Its container stopped, as when the member that holds it is gone: its row says unreachable, the
    other seats' rows and terminals go on. `up` again starts it, and keeps the other seats' ssh sessions;
    a reset brings its lab back."""
    from selenium.webdriver.common.by import By

    subprocess.run(["lxc", "stop", "--force", "lseat001", "--project", PROJECT], check=True, timeout=120)
    session = subprocess.Popen(ssh_argv("lseat002", "sleep 600"))  # a trainee's terminal, left open
    try:
        trainer(chrome)
        lab = lambda s: chrome.find_element(By.CSS_SELECTOR, f"#row-{s} .lab").text  # noqa: E731
        wait("seat 1 unreachable", lambda: lab("lseat001").startswith("✗ unreachable"), timeout=90)
        assert lab("lseat002") == "✓ up (nodes running)" and lab("lseat003") == "✓ up (nodes running)"
        r = ssh("lseat002", "invoke check")
        assert r.returncode == 0 and "0 problems" in r.stdout, r.stdout
        room("classroom.up", "--seats", str(len(SEATS)), timeout=600)
        assert api(f"/1.0/instances/lseat001?project={PROJECT}")["status"] == "Running"
        assert session.poll() is None  # up restarted each seat's sshd, not the sessions it holds
    finally:
        session.kill()
        session.wait()
        if api(f"/1.0/instances/lseat001?project={PROJECT}")["status"] != "Running":
            subprocess.run(["lxc", "start", "lseat001", "--project", PROJECT], check=True, timeout=120)
    room("classroom.reset", "--seat", "1", timeout=600)
    r = in_seat("lseat001", "invoke", "check")
    assert r.returncode == 0, r.stdout


def test_down_leaves_no_instance_image_profile_or_project(room: Cli) -> None:
    room("classroom.down", timeout=600)
    assert api(f"/1.0/projects/{PROJECT}") is None
    assert api("/1.0/images/aliases/ovn-lab-seat") is None  # the built file stays cached for the next up
    assert not Path(f"/var/lib/ovn-classroom/{PREFIX}").exists()
    assert "lseat" not in subprocess.run(["getent", "passwd"], capture_output=True, text=True).stdout
