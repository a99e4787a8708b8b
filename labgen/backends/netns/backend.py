"""netns backend: each node is a lightweight container, all of them inside the lab's own user namespace
(see keeper.py): the trainee's own account is enough, and nothing of the lab is visible on the host.

A node has its own network, mount and UTS namespaces. In its mount namespace, private directories of
the lab's state dir cover /run, /var/log, the OVS/OVN/dhcp state dirs and /etc/resolv.conf, so the
tutorial's commands work verbatim with default paths (`ovs-vsctl show`, `ovn-nbctl ...`, `ip netns add
vm1`, `dhclient ...`) and touch nothing of the host's. The underlay is a Linux bridge in a namespace of
its own: the lab's namespace has no address or route in the lab's subnets, and the host none at all.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from provision.facts import netns_names
from provision.names import LOOPBACK, NETNS_UNDERLAY_NIC, UNDERLAY_BRIDGE, underlay_veth

from ... import procfs
from ...errors import BackendFailed
from ...lock import TASK
from ...model import Lab, Node
from ..base import Backend, Log, Probe, quoted
from .host import host_probes
from .keeper import NODE_PATH, Keeper, is_mount, keepers, pinned

# node path -> host path below the node's dir; /run and /var/log whole, the rest per package
PRIVATE = {
    "/run": "run",
    "/var/log": "log",
    "/etc/openvswitch": "etc-openvswitch",
    "/etc/ovn": "etc-ovn",
    "/var/lib/openvswitch": "lib-openvswitch",
    "/var/lib/ovn": "lib-ovn",
    "/var/lib/dhcp": "lib-dhcp",
    "/root": "home",  # root's own home per node (its shell history): the host's is not the lab's
}
# the node's hostname, then (source, target) pairs to bind-mount, all as arguments: no value in the script
BIND_SCRIPT = 'hostname "$1" && shift && while [ $# -gt 1 ]; do mount --bind "$1" "$2" || exit 1; shift 2; done'
PYTHON = "/usr/bin/python3"  # the distribution's python3, as a VM guest would have
REPO = Path(__file__).resolve().parents[3]
LOGIN = 'if [ -n "$1" ]; then exec sh -c "$1"; else exec bash -l; fi'  # what an ssh session runs in the node


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode:
        shown = argv[argv.index("--") + 1 :] if "--" in argv else argv  # without the keeper's nsenter
        raise BackendFailed(f"{' '.join(shown)} failed: {r.stderr.strip()}")
    return r


class NetnsBackend(Backend):
    name = "netns"
    datapath = "netdev"  # no openvswitch kernel module here: the userspace datapath
    services = "daemons"
    install = False

    def __init__(self, lab: Lab):
        super().__init__(lab)
        self.nsdir = self.state.ns
        self.underlay_ns = lab.scoped("underlay")
        self.keeper = Keeper(self.state.dir)

    def _in(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command inside the lab's namespace (as root of its user namespace)."""
        return _sh(*self.keeper.enter(), *argv, check=check)

    def _mounted(self, path: Path) -> bool:
        return is_mount(self.keeper.mountinfo(), path)

    def netns(self, node: str) -> str:
        return self.lab.scoped(node)

    def node_dir(self, node: str) -> Path:
        return self.state.nodes / node

    def changes(self) -> list[str]:
        """The lab's state dir (the exercise), each node's OVS and OVN databases and leases, and every process
        of the lab's PID namespace: the keeper, the daemons, the dhclients."""
        paths = [self.state.dir]
        for node in self.lab.nodes:
            here = self.node_dir(node.name)
            paths += [here / PRIVATE[p] for p in ("/etc/openvswitch", "/var/lib/ovn", "/var/lib/dhcp")]
        keeper = self.keeper.pid
        ns = procfs.pid_ns(keeper) if keeper is not None else None
        if keeper is not None and ns is not None:
            paths += [procfs.path(p) for p in procfs.pids() if p == keeper or procfs.pid_ns(p) == ns]
        return [str(p) for p in paths]

    # -- checks -------------------------------------------------------------------------------------------
    def probes(self) -> list[Probe]:
        return [
            *host_probes(),
            Probe(
                "python3", lambda: None if os.path.exists(PYTHON) else f"{PYTHON} missing", "apt-get install python3"
            ),
            Probe(
                "mount points",
                lambda: ", ".join(p for p in PRIVATE if not os.path.isdir(p)) or None,
                "install the packages above: they create these directories",
            ),
        ]

    # -- lifecycle ----------------------------------------------------------------------------------------
    def create(self, log: Log, first_boot: Mapping[str, dict[str, Any]]) -> set[str]:
        self.state.make("ns")
        if self.keeper.pid is None:
            log("unshare --user --map-root-user --net --mount --uts --ipc --pid   # the lab's own namespaces")
            self.keeper.start()
        if not self._mounted(self.nsdir):
            # namespace files can only be bind-mounted onto a mount with private propagation
            self._in("mount", "--bind", str(self.nsdir), str(self.nsdir))
            self._in("mount", "--make-private", str(self.nsdir))
        have = set(self._netns_list())
        u = self.underlay_ns
        mtu = str(self.lab.underlay.mtu)
        if u not in have:
            log(f"ip netns add {u}   # the underlay {self.lab.underlay.subnet}: a bridge, no address")
            self._in("ip", "netns", "add", u)
            self._in("ip", "-n", u, "link", "set", LOOPBACK, "up")
            self._in("ip", "-n", u, "link", "add", UNDERLAY_BRIDGE, "mtu", mtu, "type", "bridge")
            self._in("ip", "-n", u, "link", "set", UNDERLAY_BRIDGE, "up")

        def one(i: int, node: Node) -> None:
            ns = self.netns(node.name)
            if ns not in have:
                log(f"ip netns add {ns}")
                self._in("ip", "netns", "add", ns)
                self._in("ip", "-n", ns, "link", "set", LOOPBACK, "up")
            nic = NETNS_UNDERLAY_NIC
            if self._in("ip", "-n", ns, "link", "show", nic, check=False).returncode:
                veth = underlay_veth(i, node.name)
                # both ends created inside their namespaces: nothing ever appears in the lab's own
                self._in("ip", "link", "add", veth, "netns", u, "type", "veth", "peer", "name", nic, "netns", ns)
                self._in("ip", "-n", u, "link", "set", veth, "mtu", mtu, "master", UNDERLAY_BRIDGE, "up")
                self._in("ip", "-n", ns, "link", "set", nic, "address", node.mac, "mtu", mtu, "up")
            self._container(node.name, log)

        # the nodes are independent once the underlay exists
        with ThreadPoolExecutor(max_workers=len(self.lab.nodes)) as pool:
            for f in [pool.submit(one, i, node) for i, node in enumerate(self.lab.nodes)]:
                f.result()
        return set()  # nodes of namespaces have no boot: `up` provisions them all

    def _container(self, node: str, log: Log) -> None:
        mnt, uts = self.nsdir / f"{node}.mnt", self.nsdir / f"{node}.uts"
        if self._mounted(mnt) and self._mounted(uts):
            return
        d = self.node_dir(node)
        for sub in PRIVATE.values():
            (d / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/resolv.conf", d / "resolv.conf") if os.path.exists("/etc/resolv.conf") else (
            d / "resolv.conf"
        ).write_text("")
        mnt.touch()
        uts.touch()
        pairs = [(str(d / sub), target) for target, sub in PRIVATE.items()]
        pairs.append((str(d / "resolv.conf"), "/etc/resolv.conf"))
        log(f"unshare --mount --uts   # {node}: own hostname, /run, /var/log, OVS/OVN/dhcp dirs")
        # one shell for all the mounts, its values as arguments: a path with a space or $(...) stays a path
        argv = ["sh", "-c", BIND_SCRIPT, "sh", node, *(p for pair in pairs for p in pair)]
        self._in(*pinned(), "unshare", f"--mount={mnt}", f"--uts={uts}", "--propagation", "private", *argv)

    def node_argv(self, node: str, argv: Sequence[str], *, tty: bool = False) -> list[str]:
        return [*self.keeper.enter(), *self._in_node(node, argv)]

    def _in_node(self, node: str, argv: Sequence[str]) -> list[str]:
        """From inside the lab's namespace: `argv` as root in the node, with a clean environment."""
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns(node)}",
            f"--mount={self.nsdir / f'{node}.mnt'}",
            f"--uts={self.nsdir / f'{node}.uts'}",
            "--wd=/",
            "--",
            "env",
            "-i",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            f"TERM={os.environ.get('TERM', 'xterm')}",
            "LANG=C.UTF-8",
            *([f"{TASK}={os.environ[TASK]}"] if TASK in os.environ else []),  # a session keeps the task's mark
            *argv,
        ]

    def user_ssh_config(self) -> str:
        """The nodes run no ssh server. ssh's ProxyCommand starts one per connection on the host, as the
        user (`sshd -i`, inetd mode: the protocol over stdin/stdout, nothing listens), whose ForceCommand
        enters the node as root of the lab's user namespace. Inside a node, sshd could not run: its
        privilege separation switches to the sshd user, which the lab's user namespace does not map."""
        sshd = shutil.which("sshd", path=NODE_PATH) or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            raise BackendFailed(
                "ssh to the netns nodes needs the sshd binary",
                "sudo bash scripts/setup (the sshd binary, no daemon left running); or use `invoke ssh NODE`",
            )
        d = self.state.ssh_dir
        for key in ("host_ed25519", "id_ed25519"):
            if not (d / key).exists():
                _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"ovn-lab {self.lab.name}", "-f", str(d / key))
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        host_key = (d / "host_ed25519.pub").read_text().split()[:2]
        (d / "known_hosts").write_text("".join(f"{self.netns(n)} {' '.join(host_key)}\n" for n in self.lab.node_names))
        user = pwd.getpwuid(os.getuid()).pw_name
        blocks = []
        for n in self.lab.node_names:
            # the command the client asked for (or a login shell) runs in the node; every value quoted
            enter = shlex.join([*self.keeper.enter_later(), *self._in_node(n, ["sh", "-c", LOGIN, "sh"])])
            cfg = d / f"sshd_config.{n}"
            cfg.write_text(
                f"HostKey {quoted(d / 'host_ed25519')}\nAuthorizedKeysFile {quoted(d / 'authorized_keys')}\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "UsePAM no\nStrictModes no\nPrintMotd no\nPidFile none\n"
                f'ForceCommand exec {enter} "$SSH_ORIGINAL_COMMAND"\n'
            )
            # ssh runs ProxyCommand with the user's shell (shlex quotes) after expanding %-tokens (%%)
            # (run as root, sshd wants its privilege separation dir, which a host without the service lacks)
            serve = ["sh", "-c", '[ "$(id -u)" != 0 ] || mkdir -p /run/sshd; exec "$0" -i -f "$1"', sshd, str(cfg)]
            proxy = shlex.join(serve).replace("%", "%%")
            blocks.append(
                f"Host {n}\n  User {user}\n  IdentityFile {quoted(d / 'id_ed25519')}\n  IdentitiesOnly yes\n"
                f"  HostKeyAlias {self.netns(n)}\n  UserKnownHostsFile {quoted(d / 'known_hosts')}\n"
                f"  StrictHostKeyChecking yes\n  LogLevel ERROR\n  ProxyCommand {proxy}\n"
            )
        return "\n".join(blocks)

    def provisioner(self, node: str) -> list[str]:
        # the node's mount namespace still sees the repository: run the provisioner from it
        return ["env", f"PYTHONPATH={REPO}", PYTHON, "-S", "-m", "provision"]  # -S: stdlib only, ~3 ms less

    def has_leftovers(self) -> bool:
        return self.state.exists() or self.keeper.pid is not None

    def status(self) -> dict[str, str]:
        have = set(self._netns_list()) if self.keeper.pid else set()
        out = {}
        for n in self.lab.nodes:
            if self.netns(n.name) not in have:
                out[n.name] = "not created"
            else:
                # the pidfile holds a pid of the lab's PID namespace: look it up in the lab's /proc
                pidfile = self.node_dir(n.name) / "run/openvswitch/ovs-vswitchd.pid"
                pid = pidfile.read_text().strip() if pidfile.exists() else ""
                up = pid.isdigit() and (self.keeper.proc() / pid).exists()
                out[n.name] = "running" if up else "created (OVS stopped)"
        return out

    def labs_on_host(self) -> dict[str, str]:
        """This user's netns labs (another user's are not visible: each lives in its own user namespace)."""
        return {Path(d).name: f"namespaces (keeper pid {pid})" for d, pid in sorted(keepers().items())}

    def destroy(self, log: Log) -> None:
        # Ending the keeper ends the lab: the kernel kills every process of its PID namespace (the daemons
        # and whatever a trainee started by hand), and its mounts and namespaces go with them. The keeper is
        # signalled only once proven the lab's (this user's tini, with the lab's state dir in its environment).
        if self.keeper.pid is not None:
            log(f"kill {self.keeper.pid}   # the lab's PID 1: every process, mount and namespace of the lab ends")
            pid = self.keeper.pid
            if not self.keeper.stop():
                raise BackendFailed(f"the lab's keeper (pid {pid}) did not end", f"kill -9 {pid}, then teardown again")
        self.state.remove()

    # -- helpers ------------------------------------------------------------------------------------------
    def _netns_list(self) -> list[str]:
        return netns_names(self._in("ip", "-j", "netns", "list", check=False).stdout)
