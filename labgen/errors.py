"""One tree of the errors a user can act on. `labgen.cli` prints a LabError as one line (what, where,
and the fix) plus its evidence, and exits with its code: 2 for bad input, 1 for a failure. Any other
exception is a bug in ovn-lab, and shows its traceback."""

from __future__ import annotations

from dataclasses import dataclass


def visible(text: str, keep: str = "") -> str:
    """`text` with its control characters written as escapes, repr's way (except those in `keep`): a path
    holding a newline or an escape sequence stays one line, and the terminal shows it instead of running it."""
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


class LabError(Exception):
    """Something the user can act on: `message` names the file, key or node; `fix` says what to do;
    `evidence` is what the lab showed (log tails, `ovs-vsctl show`), printed below the line."""

    exit_code = 1

    def __init__(self, message: str, fix: str = "", evidence: str = ""):
        super().__init__(message)
        self.message, self.fix, self.evidence = message, fix, evidence

    def __str__(self) -> str:
        return f"{self.message}; fix: {self.fix}" if self.fix else self.message

    def lines(self) -> list[str]:
        """What the user reads: one line each (several only for several problems of the input)."""
        return [str(self)]


class InputError(LabError):
    """Bad input: lab.toml, a flag, a name on the command line. Nothing was started."""

    exit_code = 2


@dataclass(frozen=True)
class Issue:
    """One problem of a lab.toml: the key path, what is wrong, the fix."""

    path: str
    msg: str
    fix: str

    def line(self, source: str) -> str:
        return f"{source}: {self.path}: {self.msg}; fix: {self.fix}"


class LabInvalid(InputError):
    """Every problem of one lab.toml at once, one line each."""

    def __init__(self, source: str, issues: list[Issue]):
        self.source, self.issues = source, issues
        super().__init__("\n".join(i.line(source) for i in issues))

    def __str__(self) -> str:
        return self.message

    def lines(self) -> list[str]:
        return [i.line(self.source) for i in self.issues]


class UnknownName(InputError):
    """A backend, node, port or exercise the lab does not have."""

    def __init__(self, kind: str, name: str, choices: list[str] | tuple[str, ...], where: str = ""):
        super().__init__(f"no {kind} {name!r}{where}", f"use one of: {', '.join(choices) or '(none)'}")


class NotUp(LabError):
    def __init__(self, lab: str):
        super().__init__(f"lab {lab} is not up", "run `invoke up` first")


class PreflightFailed(LabError):
    """The host cannot run the backend; `evidence` lists each failed probe with its fix."""


class BackendFailed(LabError):
    """A host-side command of a backend failed (ip netns, mount, vagrant, libvirt, the box build)."""


class CommandFailed(LabError):
    """A read-only command on a node failed, so a fact could not be read."""

    def __init__(self, node: str, command: str, rc: int, stderr: str):
        super().__init__(f"{node}: {command} exited {rc}: {stderr.strip()[-300:]}")
        self.node, self.rc = node, rc


class StageFailed(LabError):
    """A provisioning step or a check of the tutorial failed on a node."""


class ShowFailed(StageFailed):
    """A show command failed; `shown` is what it printed, for the trainer to see before the error."""

    def __init__(self, message: str, shown: list[str], fix: str = ""):
        super().__init__(message, fix)
        self.shown = shown


class GateTimeout(LabError):
    """A bounded wait on a real condition ran out: which node, which condition, what was last seen."""

    def __init__(self, node: str, what: str, observed: str, dump: str, timeout: float):
        super().__init__(
            f"{node}: timed out after {timeout:.0f} s waiting for {what} (last seen: {observed})",
            "the dump below shows the node's state; full logs are in the lab's logs/ directory",
            dump,
        )
        self.node, self.what, self.observed = node, what, observed


class GaveUp(LabError):
    """A node stopped waiting because another failed: that other failure is the one to report."""


class SeatsFailed(LabError):
    """Some classroom seats did not reach what the trainer asked for; each was named on its own line."""


class ClassroomNotUp(LabError):
    def __init__(self, prefix: str):
        super().__init__(f"classroom {prefix} is not up (no seats, or its sshd stopped)", "run `invoke classroom.up`")
