"""Starting OVS/OVN, two ways: systemd units (VMs) or plain daemons with pidfiles (netns nodes).

Both leave the daemons where the tutorial's commands find them by default: /run/openvswitch/db.sock,
/run/ovn/ovnnb_db.sock, /run/ovn/ovnsb_db.sock, pidfiles beside them.
"""

from __future__ import annotations

from collections.abc import Iterator

from .core import FactMap, Noop, Op, Plan, Wait, cmd
from .facts import DAEMON_PIDFILES

DIRS = ("/run/openvswitch", "/run/ovn", "/var/log/openvswitch", "/var/log/ovn", "/etc/openvswitch", "/var/lib/ovn")
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
SSL_FLAGS = (("private-key", "private_key"), ("certificate", "certificate"), ("ca-cert", "ca_cert"))
# the node's key and certificates when the lab's transport is ssl (from the per-lab CA, see labgen.pki)
SSL_FILES = ("/etc/ovn/ovn-lab-privkey.pem", "/etc/ovn/ovn-lab-cert.pem", "/etc/ovn/ovn-lab-cacert.pem")
LOG = ("-vconsole:off", "--log-file")  # -vconsole:off first, or the daemons print "opened log file"


def unit(facts: FactMap, name: str) -> Iterator[Op]:
    st = facts[f"unit:{name}"]
    if st["enabled"] and st["active"]:
        yield Noop(f"{name} is enabled and running")
    else:
        # --no-reload: the unit is loaded already (its package is installed); the reload `enable` does
        # otherwise re-reads every unit, seconds under TCG, and more while the VM boots
        yield cmd("systemctl", "enable", "--no-reload", "--now", name, timeout=300)


def daemon(facts: FactMap, name: str, *argv: str, log: str = "--log-file") -> Iterator[Op]:
    if facts[f"pid_alive:{name}"]:
        yield Noop(f"{name} is running")
    else:
        yield cmd(*argv, "-vconsole:off", log, "--detach")


def db_file(facts: FactMap, path: str, schema: str) -> Iterator[Op]:
    if not facts[f"exists:{path}"]:
        yield cmd("ovsdb-tool", "create", path, schema)


def dirs(facts: FactMap) -> Iterator[Op]:
    missing = [d for d in DIRS if not facts[f"exists:{d}"]]
    if missing:
        yield cmd("mkdir", "-p", *missing)


def start_ovs(plan: Plan, facts: FactMap) -> Iterator[Op]:
    if plan["services"] == "systemd":
        yield from unit(facts, "openvswitch-switch")
        return
    yield from dirs(facts)
    yield from db_file(facts, "/etc/openvswitch/conf.db", OVS_SCHEMA)
    if facts["pid_alive:ovsdb-server"]:
        yield Noop("ovsdb-server is running")
    else:
        yield cmd(
            "ovsdb-server",
            "/etc/openvswitch/conf.db",
            "--remote=punix:/run/openvswitch/db.sock",
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            "--pidfile",
            *LOG,
            "--detach",
        )
        yield cmd("ovs-vsctl", "--no-wait", "init")
    yield from daemon(facts, "ovs-vswitchd", "ovs-vswitchd", "--pidfile")


def start_central(plan: Plan, facts: FactMap) -> Iterator[Op]:
    if plan["services"] == "systemd":
        yield from unit(facts, "ovn-central")
    else:
        yield from dirs(facts)
        for db, schema, table in (
            ("nb", "ovn-nb", "OVN_Northbound,NB_Global"),
            ("sb", "ovn-sb", "OVN_Southbound,SB_Global"),
        ):
            path = f"/var/lib/ovn/ovn{db}_db.db"
            yield from db_file(facts, path, f"/usr/share/ovn/{schema}.ovsschema")
            yield from daemon(
                facts,
                f"ovn{db}_db",
                "ovsdb-server",
                path,
                f"--remote=punix:/run/ovn/ovn{db}_db.sock",
                f"--remote=db:{table},connections",
                # as ovn-ctl starts them: the SSL table says which key and certificates pssl: remotes use
                *(f"--{opt}=db:{table.split(',')[0]},SSL,{col}" for opt, col in SSL_FLAGS),
                f"--pidfile=/run/ovn/ovn{db}_db.pid",
                f"--unixctl=/run/ovn/ovn{db}_db.ctl",
                log=f"--log-file=/var/log/ovn/ovsdb-server-{db}.log",
            )
        yield from daemon(facts, "ovn-northd", "ovn-northd", "--pidfile", log="--log-file=/var/log/ovn/ovn-northd.log")
    # the unit returns before the databases answer; the set-connection below needs them
    yield Wait("the NB database answers", ("ovn-nbctl", "--timeout=5", "show"), 60)
    yield Wait("the SB database answers", ("ovn-sbctl", "--timeout=5", "show"), 60)


def start_controller(plan: Plan, facts: FactMap) -> Iterator[Op]:
    if plan["services"] == "systemd":
        yield from unit(facts, "ovn-host")
    else:
        # where the VMs' ovn-ctl puts it (the default would be /var/log/openvswitch/)
        log = "--log-file=/var/log/ovn/ovn-controller.log"
        yield from daemon(facts, "ovn-controller", "ovn-controller", "--pidfile", log=log)


def stop_argv(services: str, daemon: str) -> list[str]:
    """The command that stops one of the lab's daemons the way it was started (a break-fix exercise)."""
    if services == "systemd":
        return ["systemctl", "stop", {"ovn-controller": "ovn-host", "ovn-northd": "ovn-central"}.get(daemon, daemon)]
    return ["pkill", "--pidfile", DAEMON_PIDFILES[daemon]]  # SIGTERM: it exits and removes its pidfile


def sb_client(remote: str) -> list[str]:
    """The options of an ovn-sbctl (or ovn-nbctl) that talks to `remote` from a node: with ssl, the node's
    own key and certificate, checked against the lab's CA."""
    ssl = ["-p", SSL_FILES[0], "-c", SSL_FILES[1], "-C", SSL_FILES[2]] if remote.startswith("ssl:") else []
    return [f"--db={remote}", *ssl]
