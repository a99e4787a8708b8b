"""Property-based fuzz of what a user can type: lab.toml (as parsed data and as raw text) and the tasks'
arguments. Whatever goes in, the answer is a Lab made only of safe values, or one line per problem with
its fix and exit 2 (or 1): never a traceback, never a hostile value accepted."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from invoke import MockContext

import tasks
from labgen.backends import BACKENDS
from labgen.checker import BOX, HOSTNAME, IFNAME, MAC, OVNNAME
from labgen.errors import LabInvalid
from labgen.load import load_lab, validate
from labgen.model import Lab
from labgen.state import LabState
from labgen.workshop.exercises import EXERCISES
from tests.fake import FakeBackend, Script
from tests.golden import HERE

pytestmark = pytest.mark.model
BASE = tomllib.loads((HERE.parent / "lab.toml").read_text())
HOSTILE = [
    *("", " ", "\n", "a\n", "ovn-lab\n", "ovn-host-01\n", "10.0.0.0/24\n", "192.168.1.62\n", " 10.0.0.1"),
    *("$(touch PWNED)", "`id`", "; rm -rf /", "${IFS}", "a'b", 'a"b', "\\", "#{`id`}", "%s%n", "\x00", "\x1b[31m"),
    *("[/red]", "[bold]x[/bold]", "to [underlay]", "a" * 300, "../..", "/etc/passwd", "-rf", "--help", "é", "ß"),
    *("lo", "eth0", "br-int", "underlay", "mgmt", "0x0a000001", "10.0.0.1.", "c0:ff:ee:00:00:11\n", "dynamic\n"),
]
strings = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30))
leaves = st.one_of(
    strings,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(),
    st.datetimes(),
    st.lists(strings, max_size=3),
    st.dictionaries(strings, strings, max_size=2),
)
SAFE = re.compile(r"[A-Za-z0-9_.:/ -]*")  # what any accepted string value may consist of
EXAMPLES = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(data: Any, at: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every table and value path of a lab.toml document."""
    out = [at]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*at, k))
    return out


PATHS = _paths(BASE)


def assert_safe(lab: Lab) -> None:
    assert HOSTNAME.fullmatch(lab.name) and len(lab.name) <= 20
    assert BOX.fullmatch(lab.vagrant.box)
    for n in lab.nodes:
        assert HOSTNAME.fullmatch(n.name) and MAC.fullmatch(n.mac), n
    for s in lab.switches:
        assert OVNNAME.fullmatch(s.name) and MAC.fullmatch(s.dhcp.server_mac), s
    for p in lab.ports:
        assert IFNAME.fullmatch(p.name) and IFNAME.fullmatch(p.netns), p
        assert p.mac is None or MAC.fullmatch(p.mac), p

    def strings_of(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for k, v in value.items() for s in [*strings_of(k), *strings_of(v)]]
        if isinstance(value, list | tuple):
            return [s for v in value for s in strings_of(v)]
        return []

    for text in strings_of({k: v for k, v in asdict(lab).items() if k != "source"}):
        assert SAFE.fullmatch(text), f"accepted {text!r}"


def assert_clean_rejection(e: LabInvalid) -> None:
    assert e.issues
    for line in e.lines():
        assert "\n" not in line and "; fix: " in line and len(line) < 600, line


FRAGMENTS = st.sampled_from(["\n", " ", "\t", "$(id)", "`id`", ";", "[/red]", "\x00", "'", '"', "é", "x" * 70])
REFERS = {"nodes": "node", "switches": "switch"}  # ports name these by key


def mutate(doc: dict[str, Any], data: st.DataObject) -> None:
    """One change a trainer could make by mistake (or an attacker on purpose)."""
    how = data.draw(st.sampled_from(["value", "key", "rename", "suffix"]))
    if how == "rename":  # a node, switch or port under a hostile name, its references following
        table = data.draw(st.sampled_from(["nodes", "switches", "ports"]))
        if not isinstance(doc.get(table), dict) or not doc[table] or not isinstance(doc.get("ports"), dict):
            return
        old = data.draw(st.sampled_from(sorted(doc[table])))
        fine = st.from_regex(r"[a-z][a-z0-9-]{0,12}[a-z0-9]", fullmatch=True)  # often accepted: the safe path
        new = data.draw(st.one_of(fine, strings, FRAGMENTS.map(lambda f: old + f), FRAGMENTS.map(lambda f: f + old)))
        doc[table] = {new if k == old else k: v for k, v in doc[table].items()}
        for port in doc["ports"].values():
            if table in REFERS and isinstance(port, dict) and port.get(REFERS[table]) == old:
                port[REFERS[table]] = new
        return
    path = data.draw(st.sampled_from(PATHS))
    parent: Any = doc
    for k in path[:-1]:
        parent = parent.get(k, {}) if isinstance(parent, dict) else {}
    if not isinstance(parent, dict) or not path:
        return
    here = parent.get(path[-1])
    if how == "suffix" and isinstance(here, str):  # a valid value with something added: "10.0.0.1\n"
        frag = data.draw(FRAGMENTS)
        parent[path[-1]] = data.draw(st.sampled_from([here + frag, frag + here]))
    elif how == "key" and isinstance(here, dict):
        here[data.draw(strings)] = data.draw(leaves)
    else:
        parent[path[-1]] = data.draw(leaves)


@EXAMPLES
@given(st.data())
def test_any_value_anywhere_is_accepted_safely_or_rejected_cleanly(data: st.DataObject) -> None:
    doc = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(doc, data)
    try:
        lab = validate(doc)
    except LabInvalid as e:
        assert_clean_rejection(e)
        event("rejected")
    else:
        assert_safe(lab)
        event("accepted")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_file_text_is_rejected_cleanly(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "lab.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        assert_safe(load_lab(path))
    except LabInvalid as e:
        assert_clean_rejection(e)


# -- the tasks' arguments -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def up_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A lab that is up on the fake backend; no task below gets far enough to run a command."""
    tmp = tmp_path_factory.mktemp("cli")
    config = tmp / "lab.toml"
    config.write_text((HERE.parent / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "fake"'))
    with pytest.MonkeyPatch.context() as mp:  # the fixture is module-scoped: the function's monkeypatch is not
        mp.setitem(BACKENDS, "fake", "tests.fake:FakeBackend")
        mp.setattr(FakeBackend, "script", Script(tmp / "control.json"), raising=False)
        LabState(load_lab(config)).remember("fake")
        yield config


CALLS = {
    "up": lambda config, v: tasks.up(MockContext(), backend=v, config=config),
    "exec": lambda config, v: tasks.exec_(MockContext(), v, "true", config=config),
    "ssh": lambda config, v: tasks.ssh(MockContext(), v, config=config),
    "capture node": lambda config, v: tasks.capture(MockContext(), v, config=config),
    "capture seconds": lambda config, v: tasks.capture(MockContext(), "ovn-host-01", seconds=v, config=config),
    "capture port": lambda config, v: tasks.capture(MockContext(), "ovn-host-01", port=v, config=config),
    "snapshot": lambda config, v: tasks.snapshot(MockContext(), v, config=config),
    "exercise": lambda config, v: tasks.exercise_start(MockContext(), v, config=config),
    "render": lambda config, v: tasks.render(MockContext(), config=config, backend=v),
    "config": lambda config, v: tasks.validate(MockContext(), config=v),
}


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(CALLS)), st.one_of(strings, st.integers().map(str)))
def test_any_argument_gets_a_clean_answer(
    up_lab: Path, capsys: pytest.CaptureFixture[str], task: str, value: str
) -> None:
    if task == "capture seconds" and value.isascii() and value.isdigit() and 1 <= int(value) <= 3600:
        return  # a valid capture time would start tcpdump on the fake node
    # a valid value does real work on the fake lab, which holds no recording for it (hypothesis also draws
    # the string constants it finds in the code, so valid names do come up)
    lab = load_lab(up_lab)
    valid = {
        "exercise": set(EXERCISES),
        "snapshot": {"save", "restore"},
        "exec": set(lab.node_names),
        "ssh": set(lab.node_names),
        "capture node": set(lab.node_names),
        "capture port": {p.name for p in lab.ports},
        "up": set(BACKENDS),
        "render": set(BACKENDS),
    }
    if value in valid.get(task, set()):
        return
    if "\x00" in value and task == "config":
        return  # a NUL cannot reach a program's argv
    with pytest.raises(SystemExit) as e:
        CALLS[task](str(up_lab), value)
    err = capsys.readouterr().err
    assert e.value.code in (1, 2), (task, value, err)
    assert "Traceback" not in err and err.startswith("✗ "), (task, value, err)
