"""Facts in, commands out: the operation types and the runner that executes them on a node.

Standard library only: this runs on the node's own python3 (Debian 12: 3.11, Ubuntu 22.04: 3.10).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Union

END = "\x1eprovision-exit "  # in a session (python3 -m provision --session), ends each batch's output


class Cmd(NamedTuple):
    """A command that changes state. `capture` stores its stripped stdout in a variable that later
    commands use as `$NAME`, as the tutorial does with CIDR_UUID."""

    argv: tuple[str, ...]
    capture: str | None = None
    timeout: float = 120

    def shell(self) -> str:
        text = " ".join(_quote(a) for a in self.argv)
        return f"{self.capture}=$({text})" if self.capture else text


class Show(NamedTuple):
    """A read-only command whose output the trainee should see (ovn-trace, ovn-sbctl show, ...)."""

    argv: tuple[str, ...]
    timeout: float = 60

    def shell(self) -> str:
        return " ".join(_quote(a) for a in self.argv)


class Noop(NamedTuple):
    """Nothing to do: the state is already as wanted. `what` says which state."""

    what: str


class Wait(NamedTuple):
    """Poll a read-only command until it exits 0, bounded; `what` names the condition."""

    what: str
    argv: tuple[str, ...]
    timeout: float = 60


class Write(NamedTuple):
    """A file's whole content, written by the runner itself: no plan value (a node name, a NIC name, an
    address) ever reaches a shell. Echoed as the tutorial would type it, a quoted heredoc."""

    path: str
    text: str
    mode: int = 0o644
    elide: str = ""  # says what the text is, shown in its place (a private key is never echoed)

    def shell(self) -> str:
        # a delimiter no line of the text equals; a heredoc always ends in a newline, so one is shown
        end = "EOF"
        while end in self.text.splitlines():
            end += "_"
        body = self.text if self.text.endswith("\n") or not self.text else self.text + "\n"
        if self.elide:
            body = f"({self.elide}: {len(self.text.splitlines())} lines, not shown)\n"
        return f"cat > {shlex.quote(self.path)} <<'{end}'\n{body}{end}"


Op = Union[Cmd, Show, Noop, Wait, Write]  # noqa: UP007 (a runtime alias; the guest may be Python 3.10)
Plan = dict[str, Any]  # the node's plan: the JSON dict labgen.plan builds for it, the host-to-node contract
FactMap = Mapping[str, Any]  # what a step reads facts from: Facts on a node, a strict mapping in tests


def prompt(node: str, command: str) -> str:
    """The tutorial's one echo format for a command on a node (the host's transcripts use it too)."""
    return f"{node} # {command}"


def _quote(arg: str) -> str:
    # keep $VAR references readable and expandable, as the tutorial writes them
    if arg.startswith("$") and arg[1:].replace("_", "").isalnum():
        return arg
    return shlex.quote(arg)


def cmd(*argv: str, capture: str | None = None, timeout: float = 120) -> Cmd:
    return Cmd(tuple(argv), capture, timeout)


def show(*argv: str, timeout: float = 60) -> Show:
    return Show(tuple(argv), timeout)


class Fact(NamedTuple):
    """A named piece of node state: `argv` to read it (None: `read` computes it), `parse` turns the
    command's stdout into a value. A failing command gives `default` if one is set. `about` names it for a
    trainee ("the NB's ACLs"; {} is the argument), as a finding says that it cannot be read."""

    argv: Callable[[str], Sequence[str]] | None
    parse: Callable[[str], Any] = lambda out: out
    read: Callable[[str], Any] | None = None
    default: Any = None
    has_default: bool = False
    about: str = ""


class StepFailed(Exception):
    pass


def run_argv(argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: command not found\n")
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else ""
        return subprocess.CompletedProcess(list(argv), 124, out, f"timed out after {timeout:.0f} s\n")


class Facts(Mapping[str, Any]):
    """Lazily gathered, cached facts. Keys are 'name' or 'name:arg'. Tests pass a strict mapping instead."""

    def __init__(self, registry: Mapping[str, Fact]):
        self.registry = registry
        self.cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self.cache:
            name, _, arg = key.partition(":")
            fact = self.registry[name]
            if fact.read is not None:
                self.cache[key] = fact.read(arg)
            else:
                assert fact.argv is not None
                r = run_argv(fact.argv(arg), timeout=30)
                if r.returncode != 0:
                    if fact.has_default:
                        self.cache[key] = fact.default
                        return fact.default
                    raise StepFailed(
                        f"cannot read fact {key}: {shlex.join(fact.argv(arg))} exited "
                        f"{r.returncode}: {r.stderr.strip()}"
                    )
                self.cache[key] = fact.parse(r.stdout)
        return self.cache[key]

    def forget(self) -> None:
        self.cache.clear()

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache)

    def __len__(self) -> int:
        return len(self.cache)


Step = Callable[[Plan, FactMap], Iterator[Op]]


class Runner:
    """Executes the ops of steps on this node, echoing each as `node # command` with its real output."""

    def __init__(self, node: str, facts: Facts, *, out: Any = None, dry_run: bool = False):
        self.node, self.facts, self.dry_run = node, facts, dry_run
        self.out = out or sys.stdout
        self.vars: dict[str, str] = {}  # captured outputs, as the tutorial's CIDR_UUID=$(...)

    def say(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def expand(self, argv: Sequence[str]) -> list[str]:
        return [self.vars.get(a[1:], a) if a.startswith("$") else a for a in argv]

    def run_step(self, name: str, step: Step, plan: Plan) -> None:
        # ops are generated lazily, so facts read after a command see its effect
        for op in step(plan, self.facts):
            self.do(op)
        self.facts.forget()

    def do(self, op: Op) -> None:
        if isinstance(op, Noop):
            self.say(prompt(self.node, f": ok, {op.what}"))
            return
        if isinstance(op, Wait):
            self.wait(op)
            return
        self.say(prompt(self.node, op.shell()))
        if self.dry_run:
            return
        if isinstance(op, Write):
            try:
                write_file(op.path, op.text, op.mode)
            except OSError as e:
                raise StepFailed(f"cannot write {op.path}: {e}") from e
            self.facts.forget()  # as after a Cmd: later facts (file:, exists:) must see the new file
            return
        r = run_argv(self.expand(op.argv), op.timeout)
        text = r.stdout + r.stderr
        if isinstance(op, Cmd) and op.capture:
            self.vars[op.capture] = r.stdout.strip()
        elif text:
            self.say(text.rstrip("\n"))
        if r.returncode != 0:
            raise StepFailed(f"{op.shell()} exited {r.returncode}")
        if isinstance(op, Cmd):
            self.facts.forget()  # later facts must see this command's effect

    def wait(self, op: Wait) -> None:
        t0 = time.monotonic()
        delay = 0.1
        while True:
            r = run_argv(op.argv, timeout=max(5.0, op.timeout))
            if r.returncode == 0:
                self.say(prompt(self.node, f": ok, {op.what} (after {time.monotonic() - t0:.1f} s)"))
                return
            if time.monotonic() - t0 > op.timeout:
                raise StepFailed(
                    f"timed out after {op.timeout:.0f} s waiting for {op.what}: "
                    f"{shlex.join(op.argv)} -> {(r.stdout + r.stderr).strip()[-500:]}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def write_file(path: str, text: str, mode: int = 0o644) -> None:
    """Atomically: a temporary file in the same directory (same filesystem), then os.replace, so a reader
    (ovs-ctl at boot, networkd, ifup) never sees a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)  # mkstemp creates 0600
            os.fsync(f.fileno())  # the files must survive a reboot, which is why they are written at all
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_plan(path: str) -> Plan:
    if path == "-":
        return dict(json.load(sys.stdin))
    with open(path) as f:
        return dict(json.load(f))


def exists(path: str) -> bool:
    return os.path.exists(path)
