"""The classroom's parts that need no root: the [classroom] table of lab.toml, and the web app's sessions,
CSRF tokens and join-code limits (model tier: no system access)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labgen.classroom import webauth
from labgen.classroom.config import load_classroom
from labgen.errors import LabInvalid
from labgen.load import load_lab
from tests.e2e import ROOT

pytestmark = pytest.mark.model


def lab_with(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text((ROOT / "lab.toml").read_text() + "\n[classroom]\n" + table)
    return path


def test_classroom_table_defaults_and_values(tmp_path: Path) -> None:
    room = load_classroom(lab_with(tmp_path, 'prefix = "ws"\nweb_port = 9000\n'))
    assert (room.prefix, room.web_port, room.ssh_port, room.listen) == ("ws", 9000, 2222, "127.0.0.1")
    assert (room.memory, room.pids, room.hidepid) == (768, 1024, True)
    assert room.state == Path("/var/lib/ovn-classroom/ws/state") and room.web_user == "ws-web"
    load_lab(lab_with(tmp_path, 'prefix = "ws"\n'))  # the lab's own checker accepts the table


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ('prefix = "Seat"', "classroom.prefix: 'Seat' is not an account name"),
        ('prefix = "a;b"', "classroom.prefix: 'a;b' is not an account name"),
        ("web_port = 80", "classroom.web_port: 80 is out of range"),
        ("ssh_port = 8080", "classroom.ssh_port: is the web port"),
        ("pids = 10", "classroom.pids: 10 is out of range for a seat; fix: use at least 256"),
        ('listen = "localhost"', "classroom.listen: 'localhost' is not an IP address"),
        ("seats = 3", "classroom.seats: unknown key"),
        ('memory = "1G"', "classroom.memory: must be"),
    ],
)
def test_classroom_table_problems_are_one_line_each(tmp_path: Path, table: str, line: str) -> None:
    with pytest.raises(LabInvalid) as e:
        load_classroom(lab_with(tmp_path, table + "\n"))
    assert any(line in text for text in e.value.lines()), e.value.lines()


def test_a_session_cookie_is_signed_and_its_csrf_token_bound_to_it() -> None:
    signer = webauth.Signer("secret")
    cookie = signer.cookie("seat002")
    session = signer.session(cookie)
    assert session is not None and session.who == "seat002" and not session.trainer
    other = webauth.Signer("another classroom")
    assert other.session(cookie) is None  # a new classroom (a new secret) ends every session
    tampered = cookie.replace(".", "x.", 1)
    assert signer.session(tampered) is None  # the payload changed: the MAC no longer fits
    assert signer.csrf_ok(session, signer.csrf(session))
    another = signer.session(signer.cookie("seat002"))
    assert another is not None
    assert not signer.csrf_ok(session, "") and not signer.csrf_ok(session, signer.csrf(another))


def test_wrong_codes_are_limited_per_seat_and_per_address() -> None:
    limiter = webauth.Limiter()
    for _ in range(webauth.PER_SEAT):
        assert not limiter.blocked("seat003", "10.0.0.1")
        limiter.failed("seat003", "10.0.0.1")
    assert limiter.blocked("seat003", "10.0.0.9")  # that seat, from anywhere
    assert not limiter.blocked("seat004", "10.0.0.1")  # the room behind the same NAT still joins
    for n in range(webauth.PER_ADDRESS):
        limiter.failed(f"seat{100 + n}", "10.0.0.2")
    assert limiter.blocked("seat005", "10.0.0.2")


def test_a_task_that_needs_root_says_why_then_reruns_through_sudo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from labgen.classroom import actions

    ran: list[list[str]] = []
    monkeypatch.setattr(actions.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(
        actions.subprocess, "run", lambda argv, **kw: ran.append(argv) or subprocess.CompletedProcess(argv, 3)
    )
    with pytest.raises(SystemExit) as e:
        actions.down("lab.toml")
    assert e.value.code == 3  # sudo's exit status is the task's
    assert "classroom.down needs root to create and remove the seat accounts" in capsys.readouterr().out
    assert ran == [
        ["sudo", "--", "env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "labgen.classroom", "down", "--config",
         str((Path("lab.toml")).resolve())]
    ]  # fmt: skip


@pytest.mark.parametrize("v2", [True, False], ids=["cgroup-v2", "cgroup-v1"])
def test_a_seats_cgroup_holds_its_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, v2: bool) -> None:
    """The files a seat's cgroup gets, on a fake tree of each kind: this host's kernel has one kind only
    (the classroom tier runs the real one)."""
    from labgen.classroom import limits

    monkeypatch.setattr(limits, "ROOT", tmp_path)
    if v2:
        (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
        (tmp_path / "cgroup.subtree_control").write_text("\n")
    limits.create("ws", "ws01", os.getuid(), 256, 512)
    if v2:
        seat = tmp_path / "ovn-classroom-ws" / "ws01"
        assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids"
        assert (seat.parent / "cgroup.subtree_control").read_text() == "+memory +pids"
        assert ((seat / "memory.max").read_text(), (seat / "pids.max").read_text()) == (str(256 << 20), "512")
        assert limits.seat_dirs("ws", "ws01") == [seat]
    else:
        memory, pids = tmp_path / "memory/ovn-classroom-ws/ws01", tmp_path / "pids/ovn-classroom-ws/ws01"
        assert (memory / "memory.limit_in_bytes").read_text() == str(256 << 20)
        assert (pids / "pids.max").read_text() == "512"
        assert limits.seat_dirs("ws", "ws01") == [memory, pids]


def test_target_is_for_an_engine_that_places_seats(tmp_path: Path) -> None:
    from labgen.classroom.room import Room
    from labgen.errors import InputError

    config = lab_with(tmp_path, 'prefix = "zzplace"\n')
    with pytest.raises(InputError) as e:
        Room(config, target="member2")
    assert str(e.value).startswith("--target member2: the accounts engine keeps every seat on this server")
    assert Room(config, engine="lxd", target="member2").engine.target == "member2"
