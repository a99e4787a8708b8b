"""Record what the real commands answer, for the fake tier: `.venv/bin/python3 tests/record.py` (as any
user: the netns lab needs no root).

Brings up the tutorial lab on the netns backend (real OVS/OVN daemons), and records every command labgen
runs on a node through the backend, with its exit code and output, while it runs `up`, the gates' dumps,
`demo`, `status`, `check` on the healthy lab, and `check` after each fault (every exercise and the other
diagnoses). Each phase goes to tests/recorded/<phase>.json; the fake backend (tests/fake.py) answers from
them and fails on any command they do not hold. Run it again when a command labgen runs changes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from labgen.backends.base import Result  # noqa: E402
from labgen.backends.netns.backend import NetnsBackend  # noqa: E402
from labgen.demo import demo  # noqa: E402
from labgen.lab import open_up_lab, teardown  # noqa: E402
from labgen.observe import Observer  # noqa: E402
from labgen.up import up  # noqa: E402
from labgen.workshop.check import run_checks  # noqa: E402
from labgen.workshop.exercises import EXERCISES, solve  # noqa: E402
from labgen.workshop.status import status  # noqa: E402
from labgen.workshop.trace import trace  # noqa: E402

OUT = ROOT / "tests" / "recorded"
NAME = "t-rec"  # the fake tier's lab.toml uses the same name: the node MACs derive from it
_calls: list[tuple[str, list[str], Result]] | None = None
_real_run = NetnsBackend.run


PROVISIONER = "<provisioner>"  # the provisioner's argv prefix holds this checkout's path: the fake's is this


def _recording_run(self: NetnsBackend, node: str, argv: Any, **kw: Any) -> Result:
    r = _real_run(self, node, argv, **kw)
    if _calls is not None:
        prefix = self.provisioner(node)
        argv = [PROVISIONER, *argv[len(prefix) :]] if list(argv[: len(prefix)]) == prefix else list(argv)
        _calls.append((node, argv, r))
    return r


NetnsBackend.run = _recording_run  # type: ignore[method-assign]


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Record every command run on a node until the block ends, as tests/recorded/<name>.json: per node and
    argv, the answers in the order they came (the fake repeats the last one)."""
    global _calls
    _calls = []
    try:
        yield
    finally:
        answers: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        for node, argv, r in _calls:
            seq = answers.setdefault((node, tuple(argv)), [])
            one = {"rc": r.rc, "stdout": r.stdout, "stderr": r.stderr}
            if not seq or seq[-1] != one:
                seq.append(one)
        _calls = None
        rows = [{"node": n, "argv": list(a), "answers": seq} for (n, a), seq in answers.items()]
        (OUT / f"{name}.json").write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
        print(f"recorded {name}: {len(rows)} commands")


def sh(config: Path, node: str, script: str) -> None:
    """A fault, injected as a trainee would type it (not recorded)."""
    _, backend = open_up_lab(config)
    r = _real_run(backend, node, ["sh", "-c", script], timeout=30)
    assert r.ok, f"{node}: {script}: {r.stdout}{r.stderr}"


def checked(config: Path) -> None:
    lab, backend = open_up_lab(config)
    codes = sorted({f.code for f in run_checks(lab, backend) if not f.ok})
    print(f"  check: {codes or 'all ok'}")


# faults beyond the exercises, each giving one more diagnosis of `invoke check`
UUID = "$(ovn-nbctl --bare --columns=_uuid find dhcp_options cidr=10.0.0.0/24)"
FAULTS: dict[str, list[tuple[str, str]]] = {
    "lease": [("ovn-host-01", "kill $(cat /run/dhclient-vm2.pid); ip -n vm2 addr flush dev port2")],
    "netns": [("ovn-host-02", "ip netns add vm9 && ip -n vm3 link set port3 netns vm9")],
    "mtu": [("ovn-host-01", "ip link set eth0 mtu 1500")],
    "dhcp-keys": [("ovn-central-01", f"ovn-nbctl dhcp-options-set-options {UUID} lease_time=3600 router=10.0.0.1")],
    "lsp": [("ovn-central-01", "ovn-nbctl lsp-del port2")],
    # running, but pointed at a port where no SB listens (loopback inside the node: nothing leaves the lab)
    "controller-unreachable": [("ovn-host-02", "ovs-vsctl set open . external_ids:ovn-remote=tcp:127.0.0.1:6643")],
    "controller-dead": [
        ("ovn-host-02", "kill $(cat /run/ovn/ovn-controller.pid); sleep 0.5"),
        ("ovn-central-01", "ovn-sbctl chassis-del ovn-host-02"),
        ("ovn-host-02", "for p in $(ovs-vsctl list-ports br-int | grep ^ovn-); do ovs-vsctl del-port br-int $p; done"),
    ],
}


def fresh(config: Path) -> None:
    teardown(config)
    up(config, "netns")
    demo(config)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="ovnlab-record-"))
    config = tmp / "lab.toml"
    config.write_text((ROOT / "lab.toml").read_text().replace('name = "ovn-lab"', f'name = "{NAME}"'))
    try:
        with phase("up"):
            up(config, "netns")
            lab, backend = open_up_lab(config)
            observe = Observer(lab, backend)
            for n in lab.node_names:
                observe.dump(n)()  # what a failed gate shows
            run_checks(lab, backend)  # before the demo: no logical switch yet
        with phase("demo"):
            demo(config)
        with phase("healthy"):
            status(config)
            checked(config)
            observe.fact(lab.central.name, "nb_switches")  # snapshot save
            for n in lab.node_names:
                observe.fact(n, "addrs")  # capture finds the underlay NIC
        with phase("solve"):
            solve(config)  # exercise.solve on a healthy lab: each of its commands, answered
        with phase("trace"):
            trace(config, "vm1", "vm3")
            trace(config, "vm1", "vm2", proto="udp")
            trace(config, "vm2", "vm2", proto="dhcp")
        for name, ex in EXERCISES.items():
            with phase(f"exercise-{name}"):
                checked(config)  # start: the lab must pass first
                for node, argv in ex.injections(lab, backend):
                    assert backend.run(node, argv).ok, (node, argv)
                checked(config)
            fresh(config)
        for name, steps in FAULTS.items():
            for node, script in steps:
                sh(config, node, script)
            with phase(f"fault-{name}"):
                checked(config)
            fresh(config)
    finally:
        teardown(config)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
