"""The node's infrastructure: packages, Open vSwitch, the OVN central and chassis, the underlay (tutorial
steps 1-3). Each step reads facts and yields only the commands still needed; it never executes anything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from .. import services
from ..core import FactMap, Noop, Op, Plan, StepFailed, Wait, Write, cmd
from ..facts import addr_of, link, underlay_nic
from ..names import BR_INT, BR_PHY

APT_PACKAGES = ("openvswitch-switch", "ovn-host", "isc-dhcp-client", "iputils-ping", "tcpdump")


def install(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Step 1: packages. The lab's own box has them; other boxes get them from apt."""
    tools = facts["tools"]
    need = ["ovs-vsctl", "ovn-controller", "dhclient", "ping"] + (["ovn-northd"] if plan["central"] else [])
    missing = [t for t in need if not tools[t]]
    if not missing:
        yield Noop("Open vSwitch, OVN and dhclient are installed")
        return
    if not plan.get("install", True):
        raise StepFailed(
            f"missing {', '.join(missing)} and this backend installs nothing: "
            "apt-get install openvswitch-switch ovn-central ovn-host isc-dhcp-client iputils-ping"
        )
    # a fresh cloud image runs apt on first boot: wait for its lock instead of failing on it (the one shell
    # string in the steps: a constant, no plan value in it)
    yield Wait("the dpkg lock is free", ("sh", "-c", "! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock"), 600)
    pkgs = [*APT_PACKAGES, *(["ovn-central"] if plan["central"] else [])]
    yield cmd("apt-get", "update", "-q", timeout=600)
    yield cmd("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", *pkgs, timeout=1200)


AUTHORIZED = ("/home/vagrant/.ssh/authorized_keys", "/root/.ssh/authorized_keys")
SSHD_CONF = "/etc/ssh/sshd_config.d/ovn-lab.conf"
SSHD_TEXT = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"


def root_ssh(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """VMs: the lab's own ssh key, in place of Vagrant's well-known insecure one, for vagrant and for root
    (so `ssh ovn-host-01` with `invoke ssh-config` lands where the tutorial's commands run); and no
    password logs in: sshd takes keys only, and root's password is locked."""
    key = plan.get("ssh_key")
    if not key:
        raise StepFailed("the plan has no ssh_key: this step is the VM backend's")
    for path in AUTHORIZED:
        if facts[f"file:{path}"] == key:
            yield Noop(f"{path} holds the lab's key only")
            continue
        if path.startswith("/root/") and not facts["exists:/root/.ssh"]:  # vagrant's exists: it logged in
            yield cmd("install", "-d", "-m", "700", "/root/.ssh")
        yield Write(path, key + "\n", 0o600)
        if path.startswith("/home/vagrant/"):
            yield cmd("chown", "vagrant:vagrant", path)
    if facts[f"file:{SSHD_CONF}"] == SSHD_TEXT.strip():
        yield Noop("sshd takes keys only")
    else:
        yield Write(SSHD_CONF, SSHD_TEXT)
        # sshd not running (yet): it reads the file when it starts; a reload of a unit whose start job is
        # queued would wait for that job
        if facts["unit:ssh"]["active"]:
            yield cmd("systemctl", "reload", "ssh")
    if facts["passwd_locked:root"]:
        yield Noop("root's password is locked")
    else:
        yield cmd("passwd", "-l", "root")


def ovs(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Step 1: Open vSwitch running."""
    yield from services.start_ovs(plan, facts)


def central(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Step 2: NB/SB databases + ovn-northd (they need only the packages: this runs beside ovs/underlay)."""
    yield from services.start_central(plan, facts)


def sb_listen(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Step 2, last: the SB listens on 6642 for the chassis, on the underlay address only (not on every
    address of the node). After the underlay step: before the address exists, ovsdb-server cannot bind
    it and tries again only after a back-off of seconds."""
    listen = f"p{plan['transport']}:6642:{plan['central_ip']}"
    if facts["sb_connection"] == [listen]:
        yield Noop(f"the SB database listens on {listen}")
    else:
        yield cmd("ovn-sbctl", "set-connection", listen)
    if plan["transport"] == "ssl":  # the NB too, for clients on the other nodes; mutual TLS lets only the lab's in
        nb = f"pssl:6641:{plan['central_ip']}"
        if facts["nb_connection"] == [nb]:
            yield Noop(f"the NB database listens on {nb}")
        else:
            yield cmd("ovn-nbctl", "set-connection", nb)


def ssl(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """With `[ovn] transport = "ssl"`: the node's private key and certificate, signed by the lab's own CA,
    and that CA's certificate; then every database client and server on the node is told to use them
    (ovn-controller reads the local Open_vSwitch SSL table)."""
    if plan["transport"] != "ssl":
        yield Noop("the transport is tcp: no certificates")
        return
    pki = plan.get("ssl")
    if not pki:
        raise StepFailed("the plan has no certificates: labgen.pki makes them on the host")
    wanted = (
        (pki["key"], 0o600, "the node's private key"),
        (pki["cert"], 0o644, "the node's certificate"),
        (pki["cacert"], 0o644, "the lab's CA certificate"),
    )
    for path, (text, mode, what) in zip(services.SSL_FILES, wanted, strict=True):
        if facts[f"file:{path}"] == text.strip():
            yield Noop(f"{path} holds {what}")
        else:
            yield Write(path, text, mode, elide=what)
    for ctl in ("ovs-vsctl", *(("ovn-nbctl", "ovn-sbctl") if plan["central"] else ())):
        if facts[f"ssl:{ctl}"] == services.SSL_FILES:
            yield Noop(f"{ctl} get-ssl names the lab's key and certificates")
        else:
            yield cmd(ctl, "set-ssl", *services.SSL_FILES)


def chassis(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Steps 1 and 3: hostname, br-int, external_ids (nothing here needs the SB yet)."""
    node = plan["node"]
    if facts["hostname"] == node:
        yield Noop(f"hostname is {node}")
    elif plan["services"] == "systemd":
        # what `hostnamectl set-hostname` does, without starting systemd-hostnamed over D-Bus (slow on a
        # first boot's one vCPU under TCG)
        yield Write("/etc/hostname", f"{node}\n", 0o644)
        yield cmd("hostname", node)
        yield cmd("sed", "-i", f"s/^127.0.1.1.*/127.0.1.1 {node}/", "/etc/hosts")
    else:
        yield cmd("hostname", node)
    yield from integration_bridge(plan, facts)
    want = {
        "ovn-remote": plan["sb_remote"],
        "ovn-encap-ip": plan["ip"],
        "ovn-encap-type": plan["encap_type"],
        "system-id": node,
        "hostname": node,  # else the chassis shows the hostname recorded before ours was set
    }
    if plan["datapath"] == "netdev":
        want["ovn-bridge-datapath-type"] = "netdev"
    if plan["services"] == "systemd":
        # ovs-ctl sets external_ids:system-id from this file at every start: without it a reboot brings
        # the chassis back under a random UUID instead of the node's name
        conf = "/etc/openvswitch/system-id.conf"
        if facts[f"file:{conf}"] == node:
            yield Noop(f"{conf} says {node}")
        else:
            yield Write(conf, f"{node}\n")
    have = facts["ovs_ids"]
    if all(have.get(k) == v for k, v in want.items()):
        yield Noop(f"external_ids: ovn-remote={want['ovn-remote']} ovn-encap-ip={plan['ip']}")
    else:
        yield cmd("ovs-vsctl", "set", "open_vswitch", ".", *(f"external_ids:{k}={v}" for k, v in want.items()))


def controller(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Step 3, last: ovn-controller, once the SB answers (started earlier, it backs off up to 8 s between
    reconnects)."""
    sb = plan["sb_remote"]
    probe = ("ovn-sbctl", *services.sb_client(sb), "--timeout=5", "--no-leader-only", "show")
    yield Wait(f"the SB answers on {sb}", probe, 120)
    yield from services.start_controller(plan, facts)


def underlay(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """The node's underlay IP. In VMs Vagrant put it on a NIC: find that NIC by its address, never by
    name. On the userspace datapath, geneve needs the IP on an OVS netdev bridge (br-phy) whose port is
    the NIC (found by MAC), or tunnelled packets are dropped ("native tunnel routing failed")."""
    links = facts["addrs"]
    cidr = f"{plan['ip']}/{plan['prefixlen']}"
    nic = underlay_nic(links, ip=plan["ip"], mac=plan["mac"], netdev=plan["datapath"] == "netdev")
    if plan["datapath"] != "netdev":
        if nic is None:
            raise StepFailed(
                f"no interface has the underlay address {plan['ip']} or MAC {plan['mac']}; interfaces: "
                + ", ".join(f"{lk['ifname']} {lk.get('address')} {addr_of(links, lk['ifname'])}" for lk in links)
            )
        name = nic["ifname"]
        if cidr in addr_of(links, name):
            yield Noop(f"underlay {cidr} is on {name}")
        else:
            yield from static_address(facts, name, cidr)
        yield from altname(plan, facts, nic)
        return
    if nic is None:
        raise StepFailed(f"no interface with the underlay MAC {plan['mac']}")
    name = nic["ifname"]
    bridges = facts["bridges"]
    if BR_PHY in bridges and name in facts[f"bridge_ports:{BR_PHY}"]:
        yield Noop(f"br-phy (netdev) carries the underlay NIC {name}")
    else:
        yield cmd(
            "ovs-vsctl",
            "--may-exist",
            "add-br",
            BR_PHY,
            "--",
            "set",
            "bridge",
            BR_PHY,
            "datapath_type=netdev",
            f"other_config:hwaddr={plan['mac']}",
            "--",
            "--may-exist",
            "add-port",
            BR_PHY,
            name,
        )
    if "UP" not in nic.get("flags", []):
        yield cmd("ip", "link", "set", name, "up")
    if cidr in addr_of(facts["addrs"], BR_PHY):
        yield Noop(f"{cidr} is on br-phy")
    else:
        yield cmd("ip", "addr", "replace", cidr, "dev", BR_PHY)
    phy = link(facts["addrs"], ifname=BR_PHY)
    if phy is None or "UP" not in phy.get("flags", []):
        yield cmd("ip", "link", "set", BR_PHY, "up")
    if phy is not None:
        yield from altname(plan, facts, phy)


def static_address(facts: FactMap, name: str, cidr: str) -> Iterator[Op]:
    """The underlay address on a VM NIC, kept across reboots. The lab's box leaves this to us: Vagrant's
    own network configuration costs about a minute of ssh round trips under TCG."""
    if facts["exists:/etc/network/interfaces"]:  # ifupdown, as in the lab's box
        path = "/etc/network/interfaces.d/ovn-lab-underlay"
        yield Write(path, f"auto {name}\niface {name} inet static\n    address {cidr}\n")
        yield cmd("ifup", name)
    else:
        path = "/etc/systemd/network/10-ovn-lab-underlay.network"
        yield Write(path, f"[Match]\nName={name}\n\n[Network]\nAddress={cidr}\n")
        yield cmd("ip", "addr", "replace", cidr, "dev", name)
        yield cmd("ip", "link", "set", name, "up")


def altname(plan: Plan, facts: FactMap, nic: dict[str, Any]) -> Iterator[Op]:
    """lab.toml's underlay.nic_name as an alternative name of the interface holding the underlay IP, so the
    tutorial's `ip addr show enp9s0` works verbatim; a systemd .link file keeps it across reboots."""
    name = plan.get("nic_name")
    if not name:
        return
    if name in nic.get("altnames", []) or nic["ifname"] == name:
        yield Noop(f"{nic['ifname']} is also called {name}")
    else:
        yield cmd("ip", "link", "property", "add", "dev", nic["ifname"], "altname", name)
    if plan["services"] == "systemd":
        path = "/etc/systemd/network/10-ovn-lab-underlay.link"
        text = f"[Match]\nMACAddress={nic.get('address', '')}\n\n[Link]\nNamePolicy=kernel\nAlternativeName={name}\n"
        if facts[f"exists:{path}"]:
            yield Noop(f"{path} exists")
        else:
            yield Write(path, text)


def datapath_id(ip: str) -> str:
    """A fixed OpenFlow datapath ID for br-int (from the node's IP). Without one OVS derives it from the
    lowest port MAC, so adding port1 changes it; OVS then drops every OpenFlow connection, ovn-controller
    reconnects only after 2 s, and the DHCP requests sent meanwhile are lost (dhclient retries 4-8 s later)."""
    return f"{int(ipaddress.IPv4Address(ip)):016x}"


def integration_bridge(plan: Plan, facts: FactMap) -> Iterator[Op]:
    br = facts["bridges"].get(BR_INT)
    dp = plan["datapath"]
    dpid = datapath_id(plan["ip"])
    if (
        br
        and (br["datapath_type"] or "system") == dp
        and br["fail_mode"] == "secure"
        and br["other_config"].get("datapath-id") == dpid
    ):
        yield Noop(f"br-int exists (datapath {dp}, datapath-id {dpid})")
        return
    extra = [
        "--",
        "set",
        "bridge",
        BR_INT,
        "fail-mode=secure",
        "other_config:disable-in-band=true",
        f"other_config:datapath-id={dpid}",
    ]
    if dp == "netdev":  # ovn-controller would otherwise create it with the kernel datapath
        extra.append("datapath_type=netdev")
    yield cmd("ovs-vsctl", "--may-exist", "add-br", BR_INT, *extra)
