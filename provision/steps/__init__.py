"""The tutorial's steps, idempotent: each reads facts and yields only the commands still needed.

A step gets the node's plan (the JSON dict labgen.plan builds for it) and the facts; it never executes
anything. node: the infrastructure (steps 1-3); tutorial: the logical network and its "VMs" (steps 4-8).
"""

from __future__ import annotations

from ..core import Step
from .node import central, chassis, controller, install, ovs, root_ssh, sb_listen, ssl, underlay
from .tutorial import bind, dhcp, logical, show_leases, show_logical, trace, unbind, unlogical

__all__ = ["STEPS"]

# the names labgen and `python3 -m provision STEP` use; --help lists them in this order
STEPS: dict[str, Step] = {
    "install": install,
    "root-ssh": root_ssh,
    "ovs": ovs,
    "central": central,
    "underlay": underlay,
    "sb-listen": sb_listen,
    "ssl": ssl,
    "chassis": chassis,
    "controller": controller,
    "logical": logical,
    "show-logical": show_logical,
    "trace": trace,
    "bind": bind,
    "dhcp": dhcp,
    "show-leases": show_leases,
    "unbind": unbind,
    "unlogical": unlogical,
}
