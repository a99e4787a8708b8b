"""What a netns lab needs of this host, as probes (run by `up` before it touches anything, and by doctor):
user namespaces, /dev/net/tun, the tools on the user's PATH and the nodes'."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ... import procfs
from ..base import Probe
from .keeper import NODE_PATH, unshare

HOST_TOOLS = ("ip", "mount", "nsenter", "unshare", "taskset", "tini")  # labgen runs these as the user, from their PATH
NODE_TOOLS = ("ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller", "dhclient", "ping", "tcpdump")
PACKAGES = "openvswitch-switch ovn-central ovn-host isc-dhcp-client iputils-ping tcpdump tini"


def host_probes(sysctls: Path = procfs.SYSCTLS) -> list[Probe]:
    """What a lab in a user namespace needs of the host, each with its fix."""

    def sysctl(name: str) -> int | None:
        return procfs.sysctl(name, sysctls)

    def userns() -> str | None:
        if sysctl("user.max_user_namespaces") == 0:
            return "user.max_user_namespaces is 0"
        if sysctl("kernel.unprivileged_userns_clone") == 0:
            return "kernel.unprivileged_userns_clone is 0"
        if sysctl("kernel.apparmor_restrict_unprivileged_userns") == 1:
            return "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)"
        try:
            r = subprocess.run(unshare("true"), capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"the lab's unshare fails: {e}"
        return None if r.returncode == 0 else f"the lab's unshare fails: {r.stderr.decode().strip()}"

    def missing(tools: tuple[str, ...], path: str | None) -> str | None:
        gone = [t for t in tools if not shutil.which(t, path=path)]
        return f"missing: {', '.join(gone)}" if gone else None

    tun = "/dev/net/tun"
    return [
        Probe(
            "user namespaces",
            userns,
            "sudo sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1 (Ubuntu 23.10 and "
            "later: kernel.apparmor_restrict_unprivileged_userns=0); keep it in /etc/sysctl.d/",
        ),
        Probe(
            tun,
            lambda: None if os.access(tun, os.R_OK | os.W_OK) else f"{tun} is missing or not usable by you",
            "sudo modprobe tun (OVS's userspace datapath makes its internal ports as tap devices)",
        ),
        Probe("tools on your PATH", lambda: missing(HOST_TOOLS, None), "sudo apt-get install iproute2 util-linux tini"),
        Probe("node tools", lambda: missing(NODE_TOOLS, NODE_PATH), f"sudo apt-get install {PACKAGES}"),
    ]
