"""Tier 1: lab.toml loading and validation, with the exact messages a trainer sees."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from labgen.backends import BACKENDS
from labgen.checker import Checker
from labgen.classroom.config import load_classroom
from labgen.errors import LabInvalid
from labgen.keys import KEY, KEYS, REQUIRED, SCHEMA, VALUES, Key, required
from labgen.load import load_lab, validate
from labgen.model import DHCP_REQUIRED, Ovn
from tests import golden
from tests.golden import DOCS, HERE, docs_page, drift, error_log, model_json

pytestmark = pytest.mark.model
CASES = sorted((HERE / "errors").glob("*.toml"))


def _same(got: str, expected_file: Path) -> None:
    want = expected_file.read_text()
    diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "expected", "got"))
    assert got == want, f"{expected_file} differs (python3 tests/regen.py rewrites it):\n{diff}"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_error_messages(case: Path) -> None:
    _same(error_log(case), case.with_suffix(".log"))


def test_every_error_names_file_key_and_fix() -> None:
    for case in CASES:
        for line in case.with_suffix(".log").read_text().splitlines():
            assert line.startswith(f"tests/errors/{case.name}: "), line
            assert "; fix: " in line, line


def test_tutorial_lab_model() -> None:
    _same(model_json(HERE.parent / "lab.toml"), HERE / "model" / "lab.json")


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(LabInvalid) as e:
        validate({"lab": {"nam": "x"}, "underlay": {"subnet": "bad"}, "nodes": {}})
    paths = [i.path for i in e.value.issues]
    assert paths == ["lab.nam", "underlay.subnet", "nodes"]


def test_dynamic_mac_and_general_shape() -> None:
    lab = validate(
        {
            "underlay": {"subnet": "10.9.0.0/24"},
            "nodes": {f"h{i}": {"ip": f"10.9.0.{10 + i}", "central": i == 0} for i in range(10)},
            "switches": {
                "a": {
                    "subnet": "172.16.0.0/24",
                    "dhcp": {
                        "lease_time": 60,
                        "router": "172.16.0.1",
                        "server_id": "172.16.0.1",
                        "server_mac": "02:00:00:00:00:01",
                    },
                }
            },
            "ports": {
                f"p{i}": {"switch": "a", "node": f"h{i % 10}", "netns": f"v{i}", "mac": "dynamic"} for i in range(30)
            },
        }
    )
    assert len(lab.nodes) == 10 and len(lab.ports) == 30
    assert lab.ports[0].mac is None and lab.ports[0].addresses == "dynamic"
    assert lab.central.name == "h0"
    assert len({n.mac for n in lab.nodes}) == 10


def test_cli_prints_errors_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "lab.toml"
    bad.write_text((HERE / "errors" / "duplicate-ip.toml").read_text())
    r = subprocess.run(
        [sys.executable, "-m", "invoke", "up", "--backend", "netns", "--config", str(bad)],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stdout + r.stderr
    assert f"{bad}: nodes.ovn-host-02.ip: 192.168.1.62 is also the address of nodes.ovn-host-01" in r.stderr
    assert not (tmp_path / ".lab").exists()  # nothing started


def test_default_lab_is_valid() -> None:
    lab = load_lab(HERE.parent / "lab.toml")
    assert [n.ip for n in lab.nodes] == ["192.168.1.61", "192.168.1.62", "192.168.1.63"]


def test_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "lab.toml"
    os.mkfifo(fifo)  # reading it would hang
    for path in (fifo, Path("/dev/zero"), tmp_path):  # /dev/zero would fill the memory
        with pytest.raises(LabInvalid) as e:
            load_lab(path)
        assert e.value.lines() in (
            [f"{path}: (file): is not a regular file; fix: pass --config PATH to a lab.toml"],
            [f"{path}: (file): cannot read: Is a directory; fix: pass --config PATH to a lab.toml"],
        )


def test_large_and_deep_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(LabInvalid, match=r"\(file\): is 1048579 bytes, more than a lab.toml needs"):
        load_lab(big)
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(LabInvalid, match=r"\(syntax\): nested too deeply"):
        load_lab(deep)


def test_at_most_250_nodes() -> None:
    nodes = {f"n{i}": {"ip": f"10.9.{i // 250}.{i % 250 + 1}", "central": i == 0} for i in range(251)}
    with pytest.raises(LabInvalid) as e:
        validate({"underlay": {"subnet": "10.9.0.0/16"}, "nodes": nodes})
    assert [i.line("lab.toml") for i in e.value.issues] == [
        "lab.toml: nodes: 251 nodes; fix: a lab has at most 250 nodes"
    ]


def test_validate_task_says_what_the_lab_describes() -> None:
    r = subprocess.run([sys.executable, "-m", "invoke", "validate"], cwd=HERE.parent, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == (
        "lab.toml: valid: 3 nodes (ovn-central-01 192.168.1.61 (central), ovn-host-01 192.168.1.62, "
        "ovn-host-02 192.168.1.63), 1 switch, 3 ports\n"
    )


@pytest.mark.parametrize("valid", [False, True], ids=["invalid", "valid"])
def test_a_path_is_echoed_with_its_control_characters_visible(tmp_path: Path, valid: bool) -> None:
    """A newline or an escape sequence in the path stays one line and reaches no terminal as a control."""
    d = tmp_path / "a\nb\x1b[2J"
    d.mkdir()
    bad = d / "lab.toml"
    bad.write_text((HERE.parent / "lab.toml" if valid else HERE / "errors" / "duplicate-ip.toml").read_text())
    argv = [sys.executable, "-m", "invoke", "validate", "--config", str(bad)]
    r = subprocess.run(argv, cwd=HERE.parent, capture_output=True, text=True)
    out = r.stdout if valid else r.stderr
    assert r.returncode == (0 if valid else 2), r.stderr
    assert "\x1b" not in r.stdout + r.stderr
    assert len(out.splitlines()) == 1, out
    assert f"{tmp_path}/a\\nb\\x1b[2J/lab.toml: " in out


def _lab_with(path: str, value: object) -> dict[str, Any]:
    """The tutorial lab with the key `path` (NAME: the first entry of its table) set to `value`, or left out
    when `value` is DROP."""
    data = tomllib.loads((HERE.parent / "lab.toml").read_text())
    *tables, name = path.split(".")
    t = data
    for part in tables:
        t = t.setdefault(next(iter(t)) if part == "NAME" else part, {})
    if value is DROP:
        t.pop(name, None)
    else:
        t[name] = value
    return data


DROP = object()


def _issues(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    try:
        validate(data)
    except LabInvalid as e:
        return [(i.path, i.msg, i.fix) for i in e.issues]
    return []


def _concrete(path: str, data: dict[str, Any]) -> str:
    """A key's path as an issue names it: NAME replaced by the name the tutorial lab has there."""
    out, t = [], data
    for part in path.split("."):
        part = next(iter(t)) if part == "NAME" else part
        out.append(part)
        t = t.get(part, {}) if isinstance(t.get(part), dict) else {}
    return ".".join(out)


VALUE_KEYS = [k for k in KEYS if k.name != "NAME" and k.type is not dict]


@pytest.mark.parametrize("k", VALUE_KEYS, ids=[k.path for k in VALUE_KEYS])
def test_each_key_is_checked_by_its_entry_in_the_table(k: Key) -> None:
    """What labgen.keys says of a key is what the loader does: its bounds, choices, pattern and reserved
    names refuse with the entry's message and fix, and what they allow passes."""
    where = _concrete(k.path, _lab_with(k.path, DROP))
    assert not k.value or k.value in VALUES
    refused: list[tuple[Any, str, str]] = []
    allowed: list[Any] = []
    if k.range:
        lo, hi = k.range
        refused += [(v, k.bad.format(value=v), k.fix) for v in (lo - 1, hi + 1)]
        allowed += [lo, hi]
    if k.choices and not k.value:
        refused.append(("bogus", k.bad.format(value="'bogus'"), k.fix or "valid: " + ", ".join(sorted(k.choices))))
        allowed += list(k.choices)
    if k.value == "backend":
        allowed += list(BACKENDS)
    if k.pattern:
        refused.append(("no good!", k.bad.format(value="'no good!'"), k.fix))
    refused += [(r, k.reserved_bad.format(value=r), k.reserved_fix) for r in k.reserved]
    if k.reserved_prefix:
        name = f"{k.reserved_prefix}x"
        refused.append((name, k.reserved_bad.format(value=name), k.reserved_fix))
    for value, msg, fix in refused:
        assert (where, msg, fix) in _issues(_lab_with(k.path, value)), (value, _issues(_lab_with(k.path, value)))
    for value in allowed:
        assert [i for i in _issues(_lab_with(k.path, value)) if i[0] == where] == [], value
    if k.default is REQUIRED:
        missing = _issues(_lab_with(k.path, DROP))
        assert any(p == where and m.startswith("missing") for p, m, _ in missing), missing


@pytest.mark.parametrize("k", [k for k in KEYS if k.name == "NAME"], ids=lambda k: k.path)
def test_each_kind_of_name_is_checked_by_its_entry(k: Key) -> None:
    checker = Checker()
    assert not checker.name("no good!", k.table, k.path)
    assert checker.issues[-1].msg == k.bad.format(value="'no good!'")
    for name in k.reserved:
        assert not checker.name(name, k.table, k.path)
        assert checker.issues[-1].msg == k.reserved_bad.format(value=name)
    assert checker.name("a1", k.table, k.path)


def test_the_model_takes_its_defaults_from_the_table() -> None:
    data = tomllib.loads((HERE.parent / "lab.toml").read_text())
    for k in KEYS:
        if k.default not in (REQUIRED, None) and k.type is not dict and "NAME" not in k.path:
            data.get(k.table, {}).pop(k.name, None)
    data["nodes"]["ovn-host-01"].pop("central", None)
    data["switches"]["net0"].pop("exclude_ips")
    lab = validate(data)
    got = {
        "lab.name": lab.name,
        "lab.backend": lab.backend,
        "underlay.mtu": lab.underlay.mtu,
        "underlay.nic_name": lab.underlay.nic_name,
        "ovn.transport": lab.ovn.transport,
        "vagrant.box": lab.vagrant.box,
        "vagrant.accel": lab.vagrant.accel,
        "vagrant.memory": lab.vagrant.memory,
        "vagrant.cpus": lab.vagrant.cpus,
        "vagrant.management_subnet": lab.vagrant.management_subnet,
        "nodes.NAME.central": lab.node("ovn-host-01").central,
        "switches.NAME.exclude_ips": lab.switches[0].exclude_ips,
    }
    room = load_classroom(HERE.parent / "lab.toml")  # lab.toml has no [classroom]: every key its default
    got |= {f"classroom.{name}": getattr(room, name) for name in SCHEMA["classroom"]}
    defaults = {k.path: k.default for k in KEYS if k.default not in (REQUIRED, None) and k.type is not dict}
    assert got == defaults
    assert Ovn().transport == KEY["ovn.transport"].default and required("switches.NAME.dhcp") == DHCP_REQUIRED


def test_the_docs_key_table_is_generated_from_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    def docs_drift() -> list[str]:
        return [line for line in drift(HERE, {DOCS: docs_page()}) if line.startswith(str(DOCS))]

    assert docs_drift() == []
    monkeypatch.setattr(golden, "KEYS", (*KEYS[:-1], replace(KEYS[-1], help="changed")))
    assert docs_drift() == [f"{DOCS}: differs"]


def test_a_reader_that_went_away_is_no_bug() -> None:
    """`invoke status --json | head`: the pipe closes before the task writes; no traceback, exit 0."""
    r, w = os.pipe()
    os.close(r)
    with os.fdopen(w, "wb") as out:
        p = subprocess.run(
            [sys.executable, "-m", "invoke", "validate"], cwd=HERE.parent, stdout=out, stderr=subprocess.PIPE, text=True
        )
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    assert p.returncode == 0


def test_the_docs_name_the_management_network_as_the_lab_does() -> None:
    lab = load_lab(HERE.parent / "lab.toml")
    assert lab.scoped("mgmt").replace(lab.name, "<lab>") in KEY["vagrant.management_subnet"].help
