"""Running the provisioner on the nodes: one session per node and concurrent run, the steps' output to
the node's log (and the console), and the one format commands are shown in (`node # command`)."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from provision.core import END, Show, prompt
from provision.steps import STEPS

from . import pki
from .backends.base import Backend, Result
from .errors import CommandFailed, GaveUp, ShowFailed, StageFailed
from .lock import held_fds
from .model import Lab
from .observe import Observer
from .plan import node_plan
from .ui import console, progress


class Session:
    """`python3 -m provision --session` on a node, serving batch after batch of steps: one python3 start
    (and, for VMs, one ssh login) per node and task instead of one per batch."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            pass_fds=held_fds(),  # the lab's lock, held while the session runs
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, request: str, on_line: Callable[[str], None]) -> int:
        """Send one batch (a JSON line); hand over its output lines; return its exit code."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the process ended; its last words are still in stdout
        for line in self.process.stdout:
            if line.startswith(END):
                return int(line[len(END) :])
            on_line(line.rstrip("\n"))
        return self.process.wait() or 1  # ended without finishing the batch

    def end(self, *, kill: bool = False) -> None:
        """End of input: the process exits after its batch. `kill`: now (an interrupted task); SIGTERM,
        which a wrapper passes on (see Backend.session_argv)."""
        if kill and self.alive:
            self.process.terminate()
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()  # type: ignore[union-attr]

    def wait(self, timeout: float = 30) -> None:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()  # type: ignore[union-attr]


class Provisioner:
    """Runs provisioner steps on the nodes. Use it as a context manager: the sessions end with it."""

    def __init__(self, lab: Lab, backend: Backend, *, verbose: bool = False):
        self.lab, self.backend, self.verbose = lab, backend, verbose
        self.macs: dict[str, str] = {}  # ports with a dynamic MAC -> the MAC OVN chose
        self._idle: dict[str, list[Session]] = {}
        self._all: list[Session] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        for s in self._all:
            s.end(kill=kind is not None)  # a failed or interrupted task leaves no step half-run behind
        for s in self._all:
            # they hold the lab's lock: the next task starts once they are gone; an interrupted task
            # gives a SIGTERM-ed session seconds, not half a minute, before SIGKILL
            s.wait(30 if kind is None else 3)

    def _session(self, node: str) -> Session:
        with self._lock:
            idle = self._idle.setdefault(node, [])
            if idle:
                return idle.pop()
        session = Session(self.backend.session_argv(node, [*self.backend.provisioner(node), "--session"]))
        with self._lock:
            self._all.append(session)
        return session

    def warm(self, nodes: Sequence[str]) -> None:
        """Start a session on each node now: its login and python3 start overlap what the caller does next."""
        for n in nodes:
            session = self._session(n)
            with self._lock:
                self._idle[n].append(session)

    def plan(self, node: str, *, bindings: bool = True) -> dict[str, Any]:
        """The node's plan. `bindings=False`: without asking OVN for the MACs it chose (before the nodes
        exist: a first-boot request has no port to bind)."""
        if bindings and not self.macs and any(p.mac is None for p in self.lab.ports_on(node)):
            # ports with a dynamic MAC: bind them with the MAC OVN chose (empty until northd allocated it)
            with contextlib.suppress(CommandFailed):  # no NB yet (during `up`): no bindings to make either
                self.macs = {p: a.mac for p, a in Observer(self.lab, self.backend).allocations().items()}
        backend = self.backend
        plan = node_plan(
            self.lab,
            node,
            datapath=backend.datapath,
            services=backend.services,
            install=backend.install,
            macs=self.macs,
        )
        certs = pki.material(self.lab, backend.state, node)
        return plan | backend.plan_extras(node) | ({"ssl": certs} if certs else {})

    def run(
        self, node: str, steps: Sequence[str], *, live: bool = False, on_line: Callable[[str], None] | None = None
    ) -> list[str]:
        """Run provisioner steps on one node; output goes to the node's log (and the console when live)."""
        lines: list[str] = []
        path = self.backend.state.log(node)

        def line(text: str) -> None:
            lines.append(text)
            log.write(text + "\n")
            log.flush()
            if live or self.verbose:
                console.print(text, markup=False, highlight=False)
            if on_line:
                on_line(text)

        s = self._session(node)
        with path.open("a") as log:
            rc = s.run(json.dumps({"steps": list(steps), "plan": self.plan(node)}), line)
        if s.alive:
            with self._lock:
                self._idle[node].append(s)
        if rc != 0:
            raise StageFailed(
                f"{node}: provisioning step {' '.join(steps)} failed (exit {rc})",
                f"read the full log: {path}",
                "\n".join(lines[-12:]),
            )
        return lines

    def show(self, node: str, step: str) -> list[str]:
        """A read-only step (show-logical, trace): its commands straight through the backend, at once; a
        python3 process less. Returns the lines as the provisioner prints them, for the caller to show in
        the tutorial's order; raises, with those lines, if a command failed."""
        ops = [op for op in STEPS[step](self.plan(node), {}) if isinstance(op, Show)]
        with ThreadPoolExecutor(max_workers=max(1, len(ops))) as pool:
            results = list(pool.map(lambda op: self.backend.run(node, op.argv, timeout=op.timeout), ops))
        lines: list[str] = []
        for op, r in zip(ops, results, strict=True):
            lines += echo(node, op.shell(), r)
        path = self.backend.state.log(node)
        with path.open("a") as log:
            log.writelines(ln + "\n" for ln in lines)
        bad = next((op for op, r in zip(ops, results, strict=True) if not r.ok), None)
        if bad:
            raise ShowFailed(f"{node}: {bad.shell()} failed", lines, f"read the full log: {path}")
        return lines

    def run_all(self, nodes: Sequence[str], steps: Sequence[str]) -> None:
        """The same steps on several nodes in parallel."""
        each(nodes, lambda n: self.run(n, steps))


def each(nodes: Sequence[str], work: Callable[[str], object]) -> None:
    """`work` on every node in parallel, with a ✓/✗ progress line beside the running stage; the first
    failure is reported after all finished, the cause rather than a node that stopped waiting for it."""
    state = dict.fromkeys(nodes, "…")

    def one(n: str) -> None:
        try:
            work(n)
            state[n] = "✓"
        except BaseException:
            state[n] = "✗"
            raise
        finally:
            progress("  ".join(f"{k} {v}" for k, v in state.items()))

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        runs = [pool.submit(one, n) for n in nodes]
    errors = [e for f in runs if (e := f.exception())]
    if errors:
        raise next((e for e in errors if not isinstance(e, GaveUp)), errors[0])


def collect(backend: Backend, node: str, argv: list[str]) -> list[str]:
    """A read-only command's echo line and output; raises, with those lines, if it failed."""
    r = backend.run(node, argv, timeout=60)
    lines = echo(node, shlex.join(argv), r)
    if not r.ok:
        raise ShowFailed(f"{node}: {shlex.join(argv)} exited {r.rc}", lines)
    return lines


def echo(node: str, command: str, r: Result) -> list[str]:
    """A command as the tutorial shows it (`node # command`), then its output."""
    return [prompt(node, command), *(r.stdout + r.stderr).rstrip().splitlines()]


def emit(lines: Sequence[str], record: Callable[[str], None] | None, style: str | None = None) -> None:
    """Lines of commands and their output to the console as they are, and to the transcript."""
    for ln in lines:
        console.print(ln, markup=False, highlight=False, style=style)
        if record:
            record(ln)
