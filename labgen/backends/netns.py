"""netns backend: each node is a lightweight container on this host.

A node has its own network, mount and UTS namespaces. In its mount namespace, private directories of
the lab's state dir cover /run, /var/log, the OVS/OVN/dhcp state dirs and /etc/resolv.conf, so the
tutorial's commands work verbatim with default paths (`ovs-vsctl show`, `ovn-nbctl ...`, `ip netns add
vm1`, `dhclient ...`) and touch nothing of the host's. The underlay is a Linux bridge in a namespace of
its own: the root namespace has no address or route in the lab's subnets.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provision.core import running
from provision.facts import netns_names

from ..errors import BackendFailed
from ..model import Lab, Node, lab_of
from .base import Backend, Log, Probe
from .procs import is_mount, ns_inode, pids_in, stop

# node path -> host path below the node's dir; /run and /var/log whole, the rest per package
PRIVATE = {
    "/run": "run",
    "/var/log": "log",
    "/etc/openvswitch": "etc-openvswitch",
    "/etc/ovn": "etc-ovn",
    "/var/lib/openvswitch": "lib-openvswitch",
    "/var/lib/ovn": "lib-ovn",
    "/var/lib/dhcp": "lib-dhcp",
}
# the node's hostname, then (source, target) pairs to bind-mount, all as arguments: no value in the script
BIND_SCRIPT = 'hostname "$1" && shift && while [ $# -gt 1 ]; do mount --bind "$1" "$2" || exit 1; shift 2; done'
PYTHON = "/usr/bin/python3"  # the distribution's python3, as a VM guest would have
REPO = Path(__file__).resolve().parents[2]


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode:
        raise BackendFailed(f"{' '.join(argv)} failed: {r.stderr.strip()}")
    return r


def _quoted(path: Path) -> str:
    """A path as an ssh_config or sshd_config value: quoted, so a space does not end it."""
    return f'"{path}"'


class NetnsBackend(Backend):
    name = "netns"
    datapath = "netdev"  # no openvswitch kernel module here: the userspace datapath
    services = "daemons"
    install = False

    def __init__(self, lab: Lab):
        super().__init__(lab)
        self.nsdir = self.state.ns
        self.underlay_ns = lab.scoped("underlay")

    def netns(self, node: str) -> str:
        return self.lab.scoped(node)

    def node_dir(self, node: str) -> Path:
        return self.state.nodes / node

    # -- checks -------------------------------------------------------------------------------------------
    def probes(self) -> list[Probe]:
        tools = ("ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller", "dhclient", "ip", "nsenter", "unshare")

        def missing() -> str | None:
            gone = [t for t in tools if not shutil.which(t)]
            return f"missing: {', '.join(gone)}" if gone else None

        return [
            Probe("root", lambda: None if os.geteuid() == 0 else "the netns backend needs root", "run as root (sudo)"),
            Probe(
                "tools", missing, "apt-get install openvswitch-switch ovn-central ovn-host isc-dhcp-client iputils-ping"
            ),
            Probe(
                "python3", lambda: None if os.path.exists(PYTHON) else f"{PYTHON} missing", "apt-get install python3"
            ),
            Probe(
                "lab name",
                self._name_taken,
                f"run `invoke teardown` where that lab's lab.toml is, or give this lab another [lab] name in "
                f"{self.lab.source}",
            ),
            Probe(
                "mount points",
                lambda: ", ".join(p for p in PRIVATE if not os.path.isdir(p)) or None,
                "install the packages above: they create these directories",
            ),
        ]

    def _name_taken(self) -> str | None:
        """Another lab of the same name (another directory's lab.toml) owns the namespaces; ours would
        silently share its nodes. Our own, half-made lab (an interrupted `up`) has its namespace dir mounted."""
        if self.underlay_ns in self._netns_list() and not is_mount(self.nsdir):
            return f"a lab named {self.lab.name} already runs on this host, but not from {self.state.dir}"
        return None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def create(self, log: Log) -> None:
        self.state.make("ns")
        if not is_mount(self.nsdir):
            # namespace files can only be bind-mounted onto a mount with private propagation
            _sh("mount", "--bind", str(self.nsdir), str(self.nsdir))
            _sh("mount", "--make-private", str(self.nsdir))
        have = set(self._netns_list())
        u = self.underlay_ns
        mtu = str(self.lab.underlay.mtu)
        if u not in have:
            log(f"ip netns add {u}   # the underlay {self.lab.underlay.subnet}: a bridge, no address")
            _sh("ip", "netns", "add", u)
            _sh("ip", "-n", u, "link", "set", "lo", "up")
            _sh("ip", "-n", u, "link", "add", "br-lab", "mtu", mtu, "type", "bridge")
            _sh("ip", "-n", u, "link", "set", "br-lab", "up")

        def one(i: int, node: Node) -> None:
            ns = self.netns(node.name)
            if ns not in have:
                log(f"ip netns add {ns}")
                _sh("ip", "netns", "add", ns)
                _sh("ip", "-n", ns, "link", "set", "lo", "up")
            if _sh("ip", "-n", ns, "link", "show", "eth0", check=False).returncode:
                veth = f"v{i}-{node.name}"[:15]
                # both ends created inside their namespaces: nothing ever appears in the root namespace
                _sh("ip", "link", "add", veth, "netns", u, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _sh("ip", "-n", u, "link", "set", veth, "mtu", mtu, "master", "br-lab", "up")
                _sh("ip", "-n", ns, "link", "set", "eth0", "address", node.mac, "mtu", mtu, "up")
            self._container(node.name, log)

        # the nodes are independent once the underlay exists
        with ThreadPoolExecutor(max_workers=len(self.lab.nodes)) as pool:
            for f in [pool.submit(one, i, node) for i, node in enumerate(self.lab.nodes)]:
                f.result()

    def _container(self, node: str, log: Log) -> None:
        mnt, uts = self.nsdir / f"{node}.mnt", self.nsdir / f"{node}.uts"
        if is_mount(mnt) and is_mount(uts):
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
        _sh("unshare", f"--mount={mnt}", f"--uts={uts}", "--propagation", "private", *argv)

    def node_argv(self, node: str, argv: Sequence[str], *, tty: bool = False) -> list[str]:
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
            *argv,
        ]

    def user_ssh_config(self) -> str:
        """The nodes run no sshd: ssh's ProxyCommand starts one per connection inside the node (`sshd -i`,
        inetd mode: the protocol over stdin/stdout, nothing listens), with a host key and a client key of
        the lab's own. nsenter needs root, so this works for root (`sudo ssh ...`), like the lab itself."""
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            raise BackendFailed(
                "the netns nodes need the sshd binary for ssh",
                "apt-get install openssh-server (its daemon need not run: systemctl disable --now ssh); "
                "or use `invoke ssh NODE`",
            )
        d = self.state.ssh_dir
        for key in ("host_ed25519", "id_ed25519"):
            if not (d / key).exists():
                _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"ovn-lab {self.lab.name}", "-f", str(d / key))
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        (d / "sshd_config").write_text(
            f"HostKey {_quoted(d / 'host_ed25519')}\nAuthorizedKeysFile {_quoted(d / 'authorized_keys')}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPrintMotd no\nPidFile none\nSubsystem sftp internal-sftp\n"
        )
        host_key = (d / "host_ed25519.pub").read_text().split()[:2]
        known = "".join(f"{self.netns(n)} {' '.join(host_key)}\n" for n in self.lab.node_names)
        (d / "known_hosts").write_text(known)
        blocks = []
        serve = ["sh", "-c", 'mkdir -p /run/sshd && exec "$0" -i -f "$1"', sshd, str(d / "sshd_config")]
        for n in self.lab.node_names:
            # ssh runs ProxyCommand with the user's shell (shlex quotes) after expanding %-tokens (%%)
            enter = shlex.join(self.node_argv(n, serve)).replace("%", "%%")
            blocks.append(
                f"Host {n}\n  User root\n  IdentityFile {_quoted(d / 'id_ed25519')}\n  IdentitiesOnly yes\n"
                f"  HostKeyAlias {self.netns(n)}\n  UserKnownHostsFile {_quoted(d / 'known_hosts')}\n"
                f"  StrictHostKeyChecking yes\n  LogLevel ERROR\n  ProxyCommand {enter}\n"
            )
        return "\n".join(blocks)

    def provisioner(self, node: str) -> list[str]:
        # the node's mount namespace still sees the repository: run the provisioner from it
        return ["env", f"PYTHONPATH={REPO}", PYTHON, "-S", "-m", "provision"]  # -S: stdlib only, ~3 ms less

    def has_leftovers(self) -> bool:
        mine = {self.underlay_ns, *(self.netns(n) for n in self.state.known_nodes())}
        return self.state.exists() or bool(mine & set(self._netns_list()))

    def status(self) -> dict[str, str]:
        have = set(self._netns_list())
        out = {}
        for n in self.lab.nodes:
            if self.netns(n.name) not in have:
                out[n.name] = "not created"
            else:
                pidfile = self.node_dir(n.name) / "run/openvswitch/ovs-vswitchd.pid"
                up = pidfile.exists() and running(int(pidfile.read_text().strip() or 0))
                out[n.name] = "running" if up else "created (OVS stopped)"
        return out

    def labs_on_host(self) -> dict[str, str]:
        labs = (lab_of(ns, "underlay") for ns in self._netns_list())
        return {lab: "namespaces" for lab in sorted(filter(None, labs))}

    def destroy(self, log: Log) -> None:
        # The namespaces are this checkout's only while its namespace dir is mounted (up mounts it before it
        # makes any): a lab of the same name from another directory is not ours to remove.
        taken = self._name_taken()
        if taken:
            raise BackendFailed(taken, "run `invoke teardown` where that lab's lab.toml is")
        # Every process in a node's UTS or network namespace: the daemons and what a trainee started by
        # hand (a `dhclient --no-pid`), and only that. A pid is signalled only once proven the lab's that
        # way (a pidfile alone proves nothing: `-1` means every process, a stale pid someone else's).
        nodes = self.state.known_nodes()
        for node in nodes:
            uts, net = ns_inode(self.nsdir / f"{node}.uts"), ns_inode(Path(f"/run/netns/{self.netns(node)}"))
            proven = pids_in({i for i in (uts, net) if i})
            if proven:
                log(f"{node}: stopping {len(proven)} processes")
                stop(sorted(proven))
            for f in (self.nsdir / f"{node}.mnt", self.nsdir / f"{node}.uts"):
                if is_mount(f):
                    _sh("umount", str(f))
        for ns in self._netns_list():
            if ns == self.underlay_ns or ns in {self.netns(n) for n in nodes}:
                log(f"ip netns del {ns}")
                _sh("ip", "netns", "del", ns, check=False)
        if is_mount(self.nsdir):
            _sh("umount", str(self.nsdir))
        self.state.remove()

    # -- helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def _netns_list() -> list[str]:
        return netns_names(_sh("ip", "-j", "netns", "list", check=False).stdout)
