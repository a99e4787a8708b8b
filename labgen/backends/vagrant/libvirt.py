"""What the VM backend and the box builder share of libvirt: the connection, the accelerator, the storage
pool and its volumes, the networks of other labs, the addresses it leased, and the sweep that removes a lab's
objects."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

from ... import procfs
from .render import Accel

URI = "qemu:///system"
POOL = "default"
POOL_PATH = "/var/lib/libvirt/images"


def module() -> Any:
    import libvirt  # imported late: the netns backend and the tests of other tiers do not need it

    libvirt.registerErrorHandler(lambda *_: None, None)  # errors arrive as exceptions; keep stderr clean
    return libvirt


@contextlib.contextmanager
def connection() -> Iterator[Any]:
    conn = module().open(URI)
    try:
        yield conn
    finally:
        conn.close()


def problem() -> str | None:
    """Why qemu:///system cannot be reached, or None."""
    try:
        with connection():
            return None
    except Exception as e:
        return f"cannot connect to {URI}: {str(e).splitlines()[0]}"


def choose_accel(setting: str, cpu_flags: set[str] | None = None, kvm_usable: bool | None = None) -> Accel:
    """KVM when it can run ordinary guests, else QEMU TCG. /dev/kvm alone is not proof: on a PVM host it
    exists and libvirt lists kvm, yet guests hang at boot, so require the CPU's vmx/svm flag too.
    `cpu_flags` and `kvm_usable` default to this host's."""
    if setting == "kvm":
        return Accel("kvm", "KVM, forced by vagrant.accel")
    if setting == "tcg":
        return Accel("qemu", "QEMU TCG, forced by vagrant.accel")
    hw = bool((procfs.cpu_flags() if cpu_flags is None else cpu_flags) & {"vmx", "svm"})
    dev = os.access("/dev/kvm", os.R_OK | os.W_OK) if kvm_usable is None else kvm_usable
    if hw and dev:
        return Accel("kvm", "KVM: the CPU has vmx/svm and /dev/kvm is usable")
    why = "the CPU shows no vmx/svm" if not hw else "/dev/kvm is not usable"
    return Accel("qemu", f"QEMU TCG (software emulation, boots take minutes): {why}")


# -- storage ----------------------------------------------------------------------------------------------
def pool(conn: Any) -> Any:
    """The storage pool, defined and started when missing."""
    lv = module()
    try:
        p = conn.storagePoolLookupByName(POOL)
    except lv.libvirtError:
        xml = f"<pool type='dir'><name>{POOL}</name><target><path>{POOL_PATH}</path></target></pool>"
        p = conn.storagePoolDefineXML(xml, 0)
        p.build(0)
        p.setAutostart(1)
    if not p.isActive():
        p.create(0)
    return p


def pool_path() -> str:
    """Where the pool keeps its volumes (the default path when there is no pool yet)."""
    try:
        with connection() as conn:
            m = re.search(r"<path>([^<]+)</path>", conn.storagePoolLookupByName(POOL).XMLDesc())
            return m[1] if m else POOL_PATH
    except Exception:
        return POOL_PATH


def upload(conn: Any, data: bytes, name: str, fmt: str = "raw") -> str:
    """`data`, an image file of format `fmt`, as a volume of the pool (qemu runs as libvirt-qemu and
    cannot read a private home); kept when it has the same bytes already. Returns the volume's path."""
    lv = module()
    p = pool(conn)
    try:
        vol = p.storageVolLookupByName(name)
        if _same(conn, vol, data):
            return str(vol.path())
        vol.delete(0)
    except lv.libvirtError:
        pass
    vol = p.createXML(
        f"<volume><name>{name}</name><capacity>{len(data)}</capacity><target><format type='{fmt}'/></target></volume>",
        0,
    )
    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), 0)
    stream.send(data)
    stream.finish()
    return str(vol.path())


def _same(conn: Any, vol: Any, data: bytes) -> bool:
    """The volume holds `data`: read directly where the user may (root), else through libvirt (the
    volume is root's, 0600: reading it so costs less than uploading it again at every `up`)."""
    if vol.infoFlags(module().VIR_STORAGE_VOL_GET_PHYSICAL)[2] != len(data):  # the file's size, any format
        return False
    try:
        with open(vol.path(), "rb") as f:
            return f.read() == data
    except PermissionError:
        pass
    except OSError:
        return False
    chunks: list[bytes] = []

    def sink(_stream: Any, buf: bytes, _opaque: Any) -> int:
        chunks.append(buf)
        return len(buf)

    stream = conn.newStream(0)
    vol.download(stream, 0, len(data), 0)
    stream.recvAll(sink, None)
    stream.finish()
    return b"".join(chunks) == data


def domains(names: set[str]) -> set[str]:
    """Which of the domains `names` exist."""
    with connection() as conn:
        return {d.name() for d in conn.listAllDomains()} & names


def drop_box_volumes(box: str) -> list[str]:
    """Delete the pool copies vagrant-libvirt made of `box`, except a copy that still backs some VM's disk
    (another lab runs on it). Returns the names deleted; nothing when libvirt is not reachable."""
    slug = box.replace("/", "-VAGRANTSLASH-")
    try:
        with connection() as conn:
            vols = [v for p in conn.listAllStoragePools() if p.isActive() for v in p.listAllVolumes()]
            backing = {m for v in vols for m in re.findall(r"<backingStore>\s*<path>([^<]+)</path>", v.XMLDesc())}
            gone = []
            for vol in vols:
                if vol.name().startswith(f"{slug}_vagrant_box_image") and vol.path() not in backing:
                    gone.append(vol.name())
                    vol.delete(0)
            return gone
    except Exception:
        return []


# -- networks and domains ---------------------------------------------------------------------------------
def other_networks(mine: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, CIDR) of every active libvirt network not named in `mine`; [] when libvirt is unreachable."""
    nets: list[tuple[str, str]] = []
    with contextlib.suppress(Exception), connection() as conn:
        for net in conn.listAllNetworks():
            if net.name() in mine or not net.isActive():
                continue
            for m in re.finditer(r"<ip address='([\d.]+)' (?:netmask='([\d.]+)'|prefix='(\d+)')", net.XMLDesc()):
                nets.append((net.name(), str(ipaddress.ip_network(f"{m[1]}/{m[2] or m[3]}", strict=False))))
    return nets


def bridges_of(networks: tuple[str, ...]) -> list[str]:
    """The host bridges of the named libvirt networks that exist (their routes are the lab's own)."""
    names = []
    with contextlib.suppress(Exception), connection() as conn:
        for n in networks:
            with contextlib.suppress(Exception):
                names.append(conn.networkLookupByName(n).bridgeName())
    return names


def leased(network: str, domains: dict[str, str]) -> dict[str, str]:
    """node -> the address libvirt's DHCP leased to its domain (`domains`: node -> domain) on `network`, where
    Vagrant reaches the VM; the newest lease of a NIC counts. A node without one is left out."""
    got: dict[str, str] = {}
    with connection() as conn:
        newest = sorted(conn.networkLookupByName(network).DHCPLeases(), key=lambda lease: lease["expirytime"])
        by_mac = {lease["mac"].lower(): lease["ipaddr"] for lease in newest}
        for node, name in domains.items():
            for nic in ElementTree.fromstring(conn.lookupByName(name).XMLDesc()).iterfind("devices/interface"):
                source, mac = nic.find("source"), nic.find("mac")
                on = source is not None and source.get("network") == network
                if on and mac is not None and (ip := by_mac.get(mac.get("address", "").lower())):
                    got[node] = ip
    return got


def labs_with_domains() -> dict[str, list[str]]:
    """Lab name -> its domains, by the description every lab domain carries. Raises when unreachable."""
    labs: dict[str, list[str]] = {}
    with connection() as conn:
        for dom in conn.listAllDomains():
            m = re.search(r"<description>ovn-lab ([^<]+)</description>", dom.XMLDesc())
            if m:
                labs.setdefault(m[1], []).append(dom.name())
    return labs


def sweep(lab: str, domains: set[str], networks: tuple[str, ...], volumes: set[str], *, dry_run: bool) -> list[str]:
    """Every libvirt object of lab `lab`: the named domains and those whose description names the lab,
    the named networks, the named volumes and those of its domains. Nothing of other labs or of the box.
    Returns what it removed (or would remove); nothing when libvirt, or libvirt-python, is unreachable
    (teardown of a lab with no state asks every backend, also where the VM backend is not installed)."""
    try:
        lv = module()
        conn = lv.open(URI)
    except Exception:
        return []
    gone = []
    try:
        for dom in conn.listAllDomains():
            if dom.name() not in domains and f"<description>ovn-lab {lab}</description>" not in dom.XMLDesc():
                continue
            domains = domains | {dom.name()}
            gone.append(f"domain {dom.name()}")
            if not dry_run:
                if dom.isActive():
                    dom.destroy()
                for snapname in dom.snapshotListNames():
                    dom.snapshotLookupByName(snapname).delete(lv.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
                dom.undefineFlags(
                    lv.VIR_DOMAIN_UNDEFINE_NVRAM
                    | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                )
        for net in conn.listAllNetworks():
            if net.name() in networks:
                gone.append(f"network {net.name()}")
                if not dry_run:
                    if net.isActive():
                        net.destroy()
                    net.undefine()
        vols = volumes | {f"{d}.img" for d in domains}
        for p in conn.listAllStoragePools():
            if not p.isActive():
                continue
            p.refresh(0)
            for vol in p.listAllVolumes():
                if vol.name() in vols or any(vol.name().startswith(f"{d}-") for d in domains):
                    gone.append(f"volume {vol.name()}")
                    if not dry_run:
                        vol.delete(0)
    finally:
        conn.close()
    return gone


def find_overlaps(
    mine: dict[str, str],
    routes: list[dict[str, Any]],
    networks: list[tuple[str, str]],
    skip_devs: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Which of the lab's subnets (key -> CIDR) collide with host routes (`ip -j route`) or libvirt networks
    (name, CIDR); ends with a free /24 to suggest."""
    found, taken = [], []
    for r in routes:
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("dev") in skip_devs or r.get("type") in ("local", "broadcast"):
            continue
        try:
            net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        taken.append(net)
        for key, sub in mine.items():
            if net.overlaps(ipaddress.ip_network(sub)):
                found.append(f"{key} {sub} overlaps the host route {dst} on {r.get('dev')}")
    for name, cidr in networks:
        net = ipaddress.ip_network(cidr)
        taken.append(net)
        for key, sub in mine.items():
            if net.overlaps(ipaddress.ip_network(sub)):
                found.append(f"{key} {sub} overlaps the libvirt network {name} ({cidr})")
    if found:
        taken += [ipaddress.ip_network(s) for s in mine.values()]
        free = next(
            (
                f"192.168.{i}.0/24"
                for i in range(200, 255)
                if not any(ipaddress.ip_network(f"192.168.{i}.0/24").overlaps(t) for t in taken)
            ),
            None,
        )
        if free:
            found.append(f"{free} is free")
    return found
