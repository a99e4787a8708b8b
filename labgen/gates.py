"""Readiness gates: bounded waits on real conditions, as OVN's own tests wait (check at once, then back off).

A gate's probe returns (ok, observation). On timeout, GateTimeout names the node and the condition, the
last observation, and a dump of what helps (`ovs-vsctl show`, `ovn-sbctl show`, the ovn-controller log).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from .errors import CommandFailed, GateTimeout, GaveUp

SCALE = 1.0  # every gate's timeout is multiplied by this (the fake-backend tests shrink it)


def wait_for(
    node: str,
    what: str,
    probe: Callable[[], tuple[bool, str]],
    dump: Callable[[], str],
    timeout: float = 60,
    give_up: Callable[[], bool] = lambda: False,
) -> float:
    """Poll `probe` until ok; returns the seconds it took. `give_up`: stop early (another node failed, and
    its error is the one to report)."""
    t0 = time.monotonic()
    last: list[str] = ["(not checked)"]

    def attempt() -> bool:
        if give_up():
            raise GaveUp(f"{node}: stopped waiting for {what}")
        try:
            ok, last[0] = probe()
        except (CommandFailed, ValueError) as e:  # a node that cannot answer yet, or half-written output
            ok, last[0] = False, f"{type(e).__name__}: {e}"
        return ok

    retrying = Retrying(
        stop=stop_after_delay(timeout * SCALE),
        wait=wait_exponential(multiplier=0.02, max=0.5),  # 20, 40, 80 ms ...: most conditions hold soon
        retry=retry_if_result(lambda ok: not ok),
    )
    try:
        retrying(attempt)
    except RetryError:
        raise GateTimeout(node, what, last[0], dump(), timeout * SCALE) from None
    return time.monotonic() - t0
