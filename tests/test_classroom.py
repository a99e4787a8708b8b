"""The classroom tier: `classroom.up` with 3 seat accounts and their labs, the classroom's sshd into each
seat's tmux, the seats kept apart and capped, trainer actions, and `classroom.down` leaving nothing (root;
a minute or two). The classroom is `tseat`, on ports of its own: nothing a trainer's classroom would use."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import pty
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labgen.classroom import limits
from tests import browser
from tests.e2e import ROOT, Cli, netns_missing

MISSING = "the classroom tier runs as root" if os.geteuid() else netns_missing()
pytestmark = [pytest.mark.classroom, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
PREFIX, SSH_PORT, WEB_PORT = "tseat", 22722, 28080
BASE = Path("/var/lib/ovn-classroom") / PREFIX
STATE = BASE / "state"
SEATS = ("tseat001", "tseat002", "tseat003")
URL = f"http://127.0.0.1:{WEB_PORT}"
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots of the seat page and the dashboard (not in git)


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """3 seats with the demo done; removed at the end even when a test failed."""
    tmp = tmp_path_factory.mktemp("classroom")
    text = (ROOT / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "netns"')
    text += f'\n[classroom]\nprefix = "{PREFIX}"\nssh_port = {SSH_PORT}\nweb_port = {WEB_PORT}\n'
    (tmp / "lab.toml").write_text(text)
    cli = Cli(tmp / "lab.toml")
    proc_before = limits.proc_options()
    try:
        cli("classroom.up", "--seats", "3", "--demo", timeout=600)
        yield cli
    finally:
        cli("classroom.down", check=False, timeout=300)
        assert limits.proc_options() == proc_before


def ssh_argv(seat: str, command: str, key: str | None = None) -> list[str]:
    return [
        "ssh", "-p", str(SSH_PORT), "-i", str(STATE / "keys" / (key or seat)), "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}", f"{seat}@127.0.0.1", command,
    ]  # fmt: skip


def ssh(seat: str, command: str, key: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ssh_argv(seat, command, key), capture_output=True, text=True, timeout=timeout, check=False)


def status(cli: Cli) -> dict[str, dict[str, object]]:
    doc = json.loads(cli("classroom.status", "--json").stdout)
    return {row["seat"]: row for row in doc["seats"]}


def test_up_makes_three_ready_seats_apart(room: Cli) -> None:
    rows = status(room)
    assert sorted(rows) == list(SEATS)
    for row in rows.values():
        assert (row["lab"], row["chassis"], row["leases"], row["terminal"]) == ("up", 3, 3, True), row
    assert STATE.stat().st_mode & 0o777 == 0o700
    for seat in SEATS:
        home = Path(pwd.getpwnam(seat).pw_dir)
        assert home.stat().st_mode & 0o777 == 0o700
        assert (home / "lab.toml").exists() and (home / ".lab").is_dir()
        # no account of the classroom can use sudo
        r = subprocess.run(["sudo", "-l", "-U", seat], capture_output=True, text=True, check=False)
        assert "not allowed" in r.stdout + r.stderr, r.stdout


def test_cards_give_each_seat_its_url_and_code(room: Cli) -> None:
    codes = json.loads((STATE / "join-codes.json").read_text())
    out = room("classroom.cards").stdout
    for seat in SEATS:
        assert f"## {seat}" in out and f"join code: `{codes[seat]}`" in out
    assert out.count(f"open {URL}/") == 3
    assert (STATE / "cards.html").read_text().count('class="card"') == 3


def test_up_again_is_idempotent_and_more_seats_add(room: Cli) -> None:
    codes = json.loads((STATE / "join-codes.json").read_text())
    out = room("classroom.up", "--seats", "2", timeout=600).stdout
    assert out.count("✓ ready") == 3, out  # the seats it has stay
    assert json.loads((STATE / "join-codes.json").read_text()) == codes
    assert len(set(codes.values())) == 3


def test_ssh_lands_in_the_seats_own_tmux_with_its_scrollback(room: Cli) -> None:
    r = ssh("tseat002", "id -un; invoke status --json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "tseat002"
    # an interactive login: the seat's tmux session; the tutorial's command on the central node
    screen = interactive("tseat002", ["invoke ssh ovn-central-01\r", "ovn-nbctl show\r"], until=b"net0")
    assert b"switch" in screen and b"net0" in screen
    # a second login reattaches: what the first one showed is in the session's scrollback
    r = ssh("tseat002", "tmux capture-pane -p -S - -t lab")
    assert "ovn-nbctl show" in r.stdout and "net0" in r.stdout, r.stdout[-2000:]


def interactive(seat: str, keys: list[str], until: bytes, timeout: float = 60) -> bytes:
    """ssh -tt into the seat as a terminal would, type `keys`, read the screen until `until`, detach."""
    pid, fd = pty.fork()
    if pid == 0:
        argv = ["ssh", "-tt", "-p", str(SSH_PORT), "-i", str(STATE / "keys" / seat), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}", f"{seat}@127.0.0.1"]  # fmt: skip
        os.execvp("ssh", argv)
    screen = b""
    deadline = time.monotonic() + timeout
    pending = list(keys)
    try:
        while time.monotonic() < deadline and (pending or until not in screen.split(b"ovn-nbctl show", 1)[-1]):
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break
            elif pending:
                os.write(fd, pending.pop(0).encode())
        os.write(fd, b"\x02d")  # tmux's prefix, then d: detach, the session stays
        time.sleep(0.5)
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return screen


def test_the_sshd_takes_only_its_seats_with_their_own_keys(room: Cli) -> None:
    assert ssh("tseat001", "true", key="tseat002").returncode == 255  # another seat's key
    assert ssh("root", "true", key="tseat001").returncode == 255
    conf = (STATE / "sshd_config").read_text()
    assert "AllowUsers tseat001 tseat002 tseat003" in conf and "PasswordAuthentication no" in conf
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{SSH_PORT}"], capture_output=True, text=True).stdout
    assert listening.split()[3] == f"127.0.0.1:{SSH_PORT}", listening


def test_a_room_logs_in_at_once(room: Cli) -> None:
    """Terminals and watchers of a whole room connect at the same moment (after the Wi-Fi dropped): sshd's
    default refuses most unauthenticated connections beyond 10."""
    procs = [subprocess.Popen(ssh_argv(SEATS[i % 3], "true"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i in range(18)]  # fmt: skip
    failed = [p.communicate(timeout=60)[1] for p in procs if p.wait(timeout=60)]
    assert not failed, failed[:2]


def test_a_seat_cannot_see_signal_read_or_enter_another(room: Cli) -> None:
    other = pwd.getpwnam("tseat002").pw_uid
    theirs = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and p.stat().st_uid == other]
    assert theirs
    r = ssh("tseat001", "ps -eo user= | sort -u; ls /home/tseat002")
    assert r.stdout.split() == ["tseat001"], r.stdout  # hidepid: only its own processes
    assert "Permission denied" in r.stderr
    pid = theirs[0]
    for attempt in (f"kill -0 {pid}", f"nsenter -t {pid} -n true", f"cat /proc/{pid}/environ"):
        r = ssh("tseat001", attempt)
        assert r.returncode != 0 and ("not permitted" in r.stderr or "No such file" in r.stderr), (attempt, r)
    assert ssh("tseat001", "kill -0 $$").returncode == 0  # what it may do to its own


def test_trainer_actions_one_line_per_seat(room: Cli) -> None:
    out = room("classroom.exercise", "no-dhcp-options", "--all").stdout
    assert out.count("✓ exercise no-dhcp-options") == 3, out
    for seat in SEATS:  # in each seat's own lab: its check shows the fault, and it is solved per seat
        r = ssh(seat, "invoke check")
        assert r.returncode == 1 and "DHCP" in r.stdout, r.stdout
        assert ssh(seat, "invoke exercise.check").returncode == 1
    assert ssh("tseat001", "invoke exercise.solve").returncode == 0
    assert ssh("tseat001", "invoke check").returncode == 0  # repaired in that seat's lab only
    assert ssh("tseat002", "invoke exercise.check").returncode == 1
    # a busy seat (a task of its own holds its lab's lock) says so, on its own line
    holder = subprocess.Popen(ssh_argv("tseat003", "flock -n .lab/ovn-lab.lock sleep 6"))
    time.sleep(1.5)
    r = room("classroom.exercise", "no-dhcp-options", "--seat", "3", check=False)
    holder.wait(timeout=60)
    assert r.returncode == 1 and "tseat003  ✗ exercise no-dhcp-options: lab ovn-lab is busy" in r.stdout, r.stdout
    r = room("classroom.reset", "--all")
    assert r.stdout.count("✓ reset") == 3, r.stdout
    assert all(row["lab"] == "up" and row["terminal"] for row in status(room).values())
    r = ssh("tseat001", "invoke exercise.check")  # a new lab, as just after up
    assert r.returncode == 1 and "no exercise running" in r.stderr, r
    r = room("classroom.reset", check=False)
    assert r.returncode == 2 and "name one seat or --all" in r.stderr


@pytest.fixture(scope="module")
def served(room: Cli) -> Iterator[Callable[[], None]]:
    """classroom.serve in the background; calling the fixture's value restarts it."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        if procs:
            procs[-1].terminate()
            procs[-1].wait(timeout=30)
        log = (room.config.parent / "serve.log").open("ab")
        procs.append(subprocess.Popen([sys.executable, "-m", "invoke", "classroom.serve", "--config",
                                       str(room.config)], cwd=ROOT, stdout=log, stderr=log))  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{URL}/", timeout=2)
                return
            time.sleep(0.2)
        raise AssertionError((room.config.parent / "serve.log").read_text())

    start()
    try:
        yield start
    finally:
        procs[-1].terminate()
        procs[-1].wait(timeout=30)


@pytest.fixture(scope="module")
def chrome(served: Callable[[], None]) -> Iterator[Any]:
    if browser.missing():
        pytest.skip(browser.missing())
    tmp = Path(tempfile.mkdtemp(prefix="classroom-chromium-"))
    driver = browser.chromium(tmp)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp, ignore_errors=True)


def screen(driver: Any) -> str:
    return str(driver.execute_script(browser.SCREEN_JS))


def wait(what: str, ok: Callable[[], object], timeout: float = 30, shown: Callable[[], str] = str) -> None:
    """Until ok() holds; on a timeout, say what and what `shown` returns (the evidence)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def holds() -> object:
        try:
            return ok()
        except (NoSuchElementException, StaleElementReferenceException):
            return False  # the next page is still loading: its element is not there yet

    deadline = time.monotonic() + timeout
    while not holds():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {shown()}"
        time.sleep(0.3)


def test_a_trainee_in_the_browser_and_the_trainer_watching(room: Cli, served: Callable[[], None], chrome: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    room("classroom.reset", "--seat", "2")  # a lab just after up: the tutorial's steps are left to type
    codes = json.loads((STATE / "join-codes.json").read_text())
    # the join link of seat 2's card (its QR code): seat and code after "#", moved into the form
    chrome.get(f"{URL}/#" + urllib.parse.urlencode({"seat": "tseat002", "code": codes["tseat002"]}))
    assert chrome.find_element(By.ID, "code").get_attribute("value") == codes["tseat002"]
    assert chrome.execute_script("return location.hash") == ""  # not left in the address bar
    chrome.find_element(By.ID, "code").send_keys(Keys.ENTER)
    wait("the terminal", lambda: chrome.find_element(By.ID, "term").get_attribute("data-state") == "connected")
    keys = chrome.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
    keys.send_keys("invoke ssh ovn-central-01" + Keys.ENTER)
    wait("the central node's shell", lambda: "root@ovn-central-01" in screen(chrome).split("invoke ssh")[-1])
    for line in ("ovn-nbctl ls-add net0", "ovn-nbctl lsp-add net0 '<b>x</b>'", "ovn-nbctl show"):
        keys.send_keys(line + Keys.ENTER)
    wait("net0 on the screen", lambda: "(net0)" in screen(chrome).split("ovn-nbctl show")[-1])
    progress = "return fetch('/seat/tseat002/progress').then((r) => r.text())"  # the seat's row as the server has it

    def steps() -> str:
        return str(chrome.find_element(By.ID, "steps").text)

    def evidence() -> str:
        return f"{steps()!r} {chrome.execute_script(progress)}"

    wait("step 4 ticked", lambda: "✓ done: Step 4" in steps(), shown=evidence)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome.save_screenshot(str(ARTIFACTS / "seat.png"))
    # classroom.serve restarted, the page reloaded: the same terminal, with what it showed
    served()
    chrome.refresh()
    wait("the terminal again", lambda: chrome.find_element(By.ID, "term").get_attribute("data-state") == "connected")
    wait("net0 on the screen again", lambda: "(net0)" in screen(chrome))
    # the trainer: the token in a form, then the room
    chrome.get(f"{URL}/trainer")
    chrome.find_element(By.ID, "token").send_keys((STATE / "trainer-token").read_text() + Keys.ENTER)
    row = "#row-tseat002"
    wait("seat 2 at step 4", lambda: chrome.find_element(By.CSS_SELECTOR, row).get_attribute("data-step") == "switch")
    ports = chrome.find_element(By.CSS_SELECTOR, f"{row} .ports")
    assert ports.text == "<b>x</b>" and not ports.find_elements(By.TAG_NAME, "b")  # markup shows as text
    assert "✓ Step 4" in chrome.find_element(By.CSS_SELECTOR, f"{row} .step").text
    assert chrome.find_element(By.CSS_SELECTOR, f"{row} .chassis").text == "3"
    chrome.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    # over the trainee's shoulder: the same screen, read-only
    chrome.find_element(By.CSS_SELECTOR, f"{row} a").click()
    wait("the watched terminal", lambda: chrome.find_element(By.ID, "term").get_attribute("data-state") == "connected")
    wait("net0 on the watched screen", lambda: "(net0)" in screen(chrome))
    chrome.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys("echo typed-by-the-trainer" + Keys.ENTER)
    time.sleep(1)
    assert "typed-by-the-trainer" not in ssh("tseat002", "tmux capture-pane -p -S - -t lab").stdout
    chrome.back()
    chrome.find_element(By.ID, "ex-name").send_keys("no-dhcp-options")
    chrome.find_element(By.CSS_SELECTOR, "#exercise button").click()
    out = chrome.find_element(By.ID, "action-out")
    wait("one line per seat", lambda: out.text.count("tseat00") == 3, timeout=120)
    # one line per seat; seat 2's lab (reset above) has nothing to break yet, and says so
    assert out.text.count(": ✗ ") + out.text.count(": ✓ done") == 3 and "✗ ✗" not in out.text, out.text
    assert "tseat002: ✗ the lab must pass `invoke check` before an exercise starts" in out.text, out.text
    print(f"screenshots: {ARTIFACTS / 'seat.png'} {ARTIFACTS / 'dashboard.png'}")


def join(seat: str, code: str) -> tuple[int, str]:
    """POST /join without following the redirect: the status and the cookie it sets."""
    body = urllib.parse.urlencode({"seat": seat, "code": code}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=10)
    conn.request("POST", "/join", body, {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    return r.status, r.getheader("Set-Cookie") or ""


def get(path: str, cookie: str, headers: dict[str, str] | None = None, method: str = "GET") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=30)
    conn.request(method, path, headers={"Cookie": cookie.split(";")[0], **(headers or {})})
    return conn.getresponse().status


def test_web_security(room: Cli, served: Callable[[], None]) -> None:
    codes = json.loads((STATE / "join-codes.json").read_text())
    status, cookie = join("tseat001", codes["tseat001"])
    assert status == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    for path in ("/seat/tseat002", "/seat/tseat002/key", "/seat/tseat002/progress", "/seat/tseat002/live",
                 "/trainer/watch/tseat002", "/trainer/live"):  # fmt: skip
        assert get(path, cookie) == 403, path
    assert get("/seat/tseat001", cookie) == 200
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    assert get("/seat/tseat001/term", cookie, {**upgrade, "Origin": "http://evil.example"}) == 403
    assert get("/seat/tseat001/term", cookie, {**upgrade, "Origin": URL}) == 101
    assert get("/seat/tseat001/live", cookie, {**upgrade, "Origin": "http://evil.example"}) == 403
    assert get("/seat/tseat001/live", cookie, {**upgrade, "Origin": URL}) == 101
    assert get("/seat/tseat001/check", cookie, method="POST") == 403  # no CSRF token
    refused = [join("tseat003", "wrong-code")[0] for _ in range(7)]
    assert refused[:5] == [303] * 5 and refused[5:] == [429, 429], refused
    assert join("tseat003", codes["tseat003"])[0] == 429  # locked for a while, even with the right code
    log = (BASE / "web" / "log").read_text()
    assert "join failed seat=tseat003" in log and codes["tseat001"] not in log and "wrong-code" not in log


def test_https_with_the_classrooms_own_ca(room: Cli, served: Callable[[], None]) -> None:
    """serve --tls: a certificate for 127.0.0.1 from the classroom's CA, whose fingerprint the cards name;
    the session cookie is Secure."""
    import ssl

    port = WEB_PORT + 1
    log = (room.config.parent / "serve-tls.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "classroom.serve", "--tls", "--port", str(port),
                             "--config", str(room.config)], cwd=ROOT, stdout=log, stderr=log)  # fmt: skip
    try:
        ca = STATE / "tls" / "ca.crt"
        deadline = time.monotonic() + 60
        while True:
            try:
                https = ssl.create_default_context(cafile=str(ca))  # verifies the chain and the address
                page = urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=5, context=https)
                break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline, (room.config.parent / "serve-tls.log").read_text()
                time.sleep(0.3)
        assert page.status == 200
        served_ca = urllib.request.urlopen(f"https://127.0.0.1:{port}/ca.crt", timeout=5, context=https).read()
        assert served_ca == ca.read_bytes()
        codes = json.loads((STATE / "join-codes.json").read_text())
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=https)
        body = urllib.parse.urlencode({"seat": "tseat001", "code": codes["tseat001"]})
        conn.request("POST", "/join", body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert "Secure" in (conn.getresponse().getheader("Set-Cookie") or "")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(ca.read_text())).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    out = room("classroom.cards").stdout
    assert out.count(f"open https://127.0.0.1:{WEB_PORT}/") == 3 and out.count(fingerprint) == 3, out
    cards = (STATE / "cards.html").read_text()
    assert cards.count("<svg") == 3 and fingerprint in cards


def test_the_trainer_types_in_a_seat_only_while_the_trainee_allows_it(room: Cli, served: Callable[[], None]) -> None:
    """Asked from the dashboard's watch page, allowed on the seat's page: until then and after, what the
    trainer's terminal sends is dropped; when the trainee stops it, that terminal is closed at once."""
    import asyncio
    import re

    import aiohttp

    seat = "tseat001"
    codes = json.loads((STATE / "join-codes.json").read_text())
    token = (STATE / "trainer-token").read_text().strip()

    async def session(form_path: str, form: dict[str, str], page: str) -> tuple[aiohttp.ClientSession, str]:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # 127.0.0.1 keeps its cookies
        async with http.post(URL + form_path, data=form) as r:
            assert r.status == 200, r.status
        async with http.get(URL + page) as r:
            csrf = re.search(r'name="csrf" content="([^"]+)"', await r.text())
        assert csrf, page
        return http, csrf[1]

    def typed(marker: str) -> bool:
        return marker in ssh(seat, "tmux capture-pane -p -S - -t lab").stdout

    async def typing(http: aiohttp.ClientSession, marker: str) -> aiohttp.ClientWebSocketResponse:
        ws = await http.ws_connect(f"{URL}/trainer/watch/{seat}/term?write=1", headers={"Origin": URL})
        await ws.send_json({"data": f"echo {marker}\r"})
        await asyncio.sleep(1.5)
        return ws

    async def scenario() -> None:
        trainer, t_csrf = await session("/trainer/login", {"token": token}, "/trainer")
        trainee, s_csrf = await session("/join", {"seat": seat, "code": codes[seat]}, f"/seat/{seat}")
        try:
            ws = await typing(trainer, "before-allowed")  # asked for nothing yet: read-only
            await ws.close()
            assert not typed("before-allowed")
            live = await trainee.ws_connect(f"{URL}/seat/{seat}/live", headers={"Origin": URL})
            await live.receive_json(timeout=30)
            # the trainee allows nothing that was not asked; then the trainer asks, and the seat's page hears it
            async with trainee.post(f"{URL}/seat/{seat}/takeover", json={"allow": True},
                                    headers={"X-CSRF-Token": s_csrf}) as r:  # fmt: skip
                assert (await r.json())["takeover"] is None
            async with trainer.post(f"{URL}/trainer/takeover", json={"seat": seat, "ask": True}) as r:
                assert r.status == 403  # no CSRF token
            async with trainer.post(f"{URL}/trainer/takeover", json={"seat": seat, "ask": True},
                                    headers={"X-CSRF-Token": t_csrf}) as r:  # fmt: skip
                assert (await r.json())["takeover"] == "asked"
            while (await live.receive_json(timeout=30))["seats"][0].get("takeover") != "asked":
                pass
            ws = await typing(trainer, "asked-not-allowed")
            await ws.close()
            assert not typed("asked-not-allowed")
            async with trainee.post(f"{URL}/seat/{seat}/takeover", json={"allow": True},
                                    headers={"X-CSRF-Token": s_csrf}) as r:  # fmt: skip
                assert (await r.json())["takeover"] == "allowed"
            ws = await typing(trainer, "typed-by-the-trainer")
            assert typed("typed-by-the-trainer")
            async with trainee.post(f"{URL}/seat/{seat}/takeover", json={"allow": False},
                                    headers={"X-CSRF-Token": s_csrf}) as r:  # fmt: skip
                assert (await r.json())["takeover"] is None
            while not ws.closed:  # the trainee stopped it: the trainer's terminal is closed
                await asyncio.wait_for(ws.receive(), 10)
            await live.close()
        finally:
            await trainer.close()
            await trainee.close()

    asyncio.run(scenario())
    assert "takeover trainee seat=tseat001 state=allowed" in (BASE / "web" / "log").read_text()


def test_a_runaway_seat_is_capped_and_the_others_answer(room: Cli) -> None:
    pids_max = 1024
    hog = ssh("tseat003", 'timeout 20 python3 -c "b = bytearray(3 << 30); print(len(b))"', timeout=60)
    assert hog.returncode != 0 and "3221225472" not in hog.stdout  # killed by its memory limit
    forks = ssh("tseat003", "timeout 15 bash -c 'for i in $(seq 1500); do sleep 10 & done'", timeout=60)
    assert "Resource temporarily unavailable" in forks.stderr, forks  # fork: the pids limit
    assert len(limits.procs(PREFIX, "tseat003")) <= pids_max
    t0 = time.monotonic()
    other = ssh("tseat001", "invoke status --json", timeout=60)
    assert other.returncode == 0 and time.monotonic() - t0 < 30
    limits.kill(PREFIX, "tseat003")  # its sleeps; its lab comes back with reset below


def test_a_higher_seats_adds_seats(room: Cli) -> None:
    out = room("classroom.up", "--seats", "4", timeout=600).stdout
    assert "tseat004  ✓ ready" in out and out.count("✓ ready") == 4, out
    assert "AllowUsers tseat001 tseat002 tseat003 tseat004" in (STATE / "sshd_config").read_text()
    assert ssh("tseat004", "id -un").stdout.strip() == "tseat004"  # the running sshd took the new seat
    codes = json.loads((STATE / "join-codes.json").read_text())
    assert len(set(codes.values())) == 4


def test_down_leaves_nothing(room: Cli) -> None:
    seats = (*SEATS, "tseat004")
    uids = [pwd.getpwnam(s).pw_uid for s in seats]
    room("classroom.down", timeout=300)
    names = {p.pw_name for p in pwd.getpwall()}
    assert not names & {*seats, f"{PREFIX}-web"}
    assert not any(Path("/home", s).exists() for s in seats)
    assert not BASE.exists()
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) in uids], uids
    assert not any(d.exists() for d in limits.parent_dirs(PREFIX))
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{SSH_PORT}"], capture_output=True, text=True).stdout
    assert not listening.strip()
    assert "hidepid" not in limits.proc_options() or "hidepid=0" in limits.proc_options()


def _uid(p: Path) -> int:
    try:
        return p.stat().st_uid
    except OSError:
        return -1
