"""Tier 5: the product path: box build, `invoke up` with three libvirt VMs (TCG here), demo, checks,
idempotency, teardown after Vagrant's own state was lost. Minutes; `.ci/run` runs it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labgen.backends.vagrant.run import insecure_key
from tests.e2e import ROOT, Cli, changes, check_demo, check_infrastructure, finish, interrupt


def _can_run_vms() -> bool:
    """vagrant, libvirt reachable as this user (root, or the libvirt group), and root for the box's
    build: being root, or sudo without a password (CI's ordinary user; a trainee types theirs)."""
    if not shutil.which("vagrant"):
        return False
    virsh = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True)
    sudo = os.geteuid() == 0 or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    return virsh.returncode == 0 and sudo


pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(not _can_run_vms(), reason="needs vagrant, libvirt for this user and sudo (.ci/run sets up)"),
]
IPS = {"ovn-central-01": "192.168.1.61", "ovn-host-01": "192.168.1.62", "ovn-host-02": "192.168.1.63"}


def _libvirt_objects(prefix: str) -> list[str]:
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        names = [f"domain {d.name()}" for d in conn.listAllDomains() if d.name().startswith(prefix)]
        names += [f"network {n.name()}" for n in conn.listAllNetworks() if n.name().startswith(prefix)]
        for pool in conn.listAllStoragePools():
            if pool.isActive():
                pool.refresh(0)
                names += [f"volume {v.name()}" for v in pool.listAllVolumes() if v.name().startswith(prefix)]
        return names
    finally:
        conn.close()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    text = (ROOT / "lab.toml").read_text().replace('name = "ovn-lab"', 'name = "t-vm"')
    (tmp_path / "lab.toml").write_text(text)
    c = Cli(tmp_path / "lab.toml")
    try:
        yield c
    finally:
        c("teardown", check=False)


def test_box_build(cli: Cli) -> None:
    """As on a laptop: the root half through sudo, said first; the .box file and the box are the user's."""
    r = cli("box", "--force", timeout=1200)
    assert "box ovn-lab/bookworm ready" in r.stdout, r.stdout
    if os.geteuid() != 0:
        assert "which need root: sudo runs that part" in r.stdout, r.stdout
    box = Path(r.stdout.split("ready in ")[1].split(": ", 1)[1].split(" (")[0])
    assert box.stat().st_uid == os.getuid(), box
    listed = subprocess.run(["vagrant", "box", "list"], capture_output=True, text=True).stdout
    assert "ovn-lab/bookworm (libvirt" in listed, listed


SECOND_LAB = """
[lab]
name = "t-vm2"
[underlay]
subnet = "192.168.7.0/24"
[ovn]
transport = "ssl"
[vagrant]
management_subnet = "192.168.123.0/24"
[nodes.c1]
ip = "192.168.7.61"
central = true
[nodes.h1]
ip = "192.168.7.62"
[switches.net0]
subnet = "10.0.0.0/24"
exclude_ips = "10.0.0.1..10.0.0.10"
[switches.net0.dhcp]
lease_time = 3600
router = "10.0.0.1"
server_id = "10.0.0.1"
server_mac = "c0:ff:ee:00:00:01"
[ports.p1]
switch = "net0"
node = "c1"
netns = "vm1"
mac = "dynamic"
[ports.p2]
switch = "net0"
node = "h1"
netns = "vm2"
mac = "c0:ff:ee:00:00:22"
"""


def test_vm_lab_end_to_end(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # invoke killed while the VMs boot: vagrant goes on and holds the lab's lock, so `up` refuses and names
    # it; teardown stops it (it holds the lab's lock file open: proven the lab's) and removes what it made
    r = interrupt(cli, ["up", "--backend", "vagrant"], "vagrant up (all VMs in parallel)", signal.SIGKILL, after=20)
    assert r.returncode == -signal.SIGKILL, r.stdout
    busy = cli("up", check=False)
    assert busy.returncode == 1 and "was killed, but what it started still runs: " in busy.stderr, busy.stderr
    assert "vagrant up" in busy.stderr, busy.stderr
    down = cli("teardown", timeout=300)
    assert "stopping what it left running" in down.stdout, down.stdout
    assert _libvirt_objects("t-vm_") == []
    # Ctrl-C while the VMs boot (to invoke and vagrant, as a terminal sends it): `up` again finishes the lab
    r = interrupt(
        cli, ["up", "--backend", "vagrant"], "vagrant up (all VMs in parallel)", signal.SIGINT, after=20, group=True
    )
    print(f"up interrupted during boot: exit {r.returncode}")
    assert r.returncode in (1, 130), r.stdout
    up = cli("up", "--backend", "vagrant", timeout=1500)
    assert "QEMU TCG" in up.stdout or "KVM" in up.stdout  # the accelerator is chosen and said
    assert "lab t-vm is up" in up.stdout, up.stdout
    check_infrastructure(cli, IPS)
    # the VMs got their seed disks when they were made (by the interrupted run, or this one): each configured
    # itself as it first booted, and its unit's log is on the node
    booted = cli.exec("ovn-host-01", "systemctl is-active ovn-lab-first-boot; cat /var/log/ovn-lab/first-boot.log")
    assert booted.startswith("active\n") and "ovn-host-01 # systemctl enable --no-reload --now ovn-host" in booted, (
        booted
    )
    # the VMs take the lab's own key, not Vagrant's insecure one that every Vagrant ships; no password
    # logs in (sshd offers publickey only) and root's password is locked
    block = cli("ssh-config").stdout.split("Host ovn-host-01\n")[1].split("\nHost ")[0]
    where = dict(line.split(None, 1) for line in block.strip().splitlines())
    opts = ["IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
    argv = ["ssh", "-F", "/dev/null", "-i", str(insecure_key()), *(f"-o{o}" for o in opts), "-p", where["Port"]]
    insecure = subprocess.run([*argv, f"root@{where['HostName']}", "true"], capture_output=True, text=True, timeout=60)
    assert insecure.returncode == 255 and "Permission denied (publickey)" in insecure.stderr, insecure
    assert cli.exec("ovn-host-01", "passwd -S root").split()[1] == "L"
    # a second lab on the same subnets is stopped by preflight, before it creates anything
    other = cli.config.parent / "other"
    other.mkdir()
    (other / "lab.toml").write_text(cli.config.read_text().replace('name = "t-vm"', 'name = "t-vm2"'))
    clash = Cli(other / "lab.toml")("up", "--backend", "vagrant", check=False)
    assert clash.returncode == 1, clash.stdout + clash.stderr
    assert "overlaps the libvirt network t-vm_underlay (192.168.1.0/24)" in clash.stderr, clash.stderr
    assert not _libvirt_objects("t-vm2_")
    demo = cli("demo", timeout=600)
    check_demo(cli, demo.stdout)
    # the explanation on VMs: the traced packet leaves ovn-host-01 through geneve, VNI 1, ports 1 -> 3
    tr = cli("trace", "vm1", "vm3", timeout=300).stdout
    assert "table=25 (ls_in_l2_lkup)" in tr and "=> geneve to 192.168.1.63: VNI 0x1" in tr, tr
    assert "(from logical port key 1 to key 3)" in tr and "= port3 (tunnel key 3), bound on ovn-host-02" in tr, tr
    # a second lab beside it, other subnets, over ssl, a port on its central node: both work, and
    # tearing it down leaves this one passing check
    (other / "lab.toml").write_text(SECOND_LAB)
    second = Cli(other / "lab.toml")
    try:
        # made by this up, c1 configures itself as it boots (from its seed disk) and up only proves the
        # gates; h1's first-boot unit fails (a fault this test sets): up names it, shows its log, and
        # provisions h1 over ssh
        monkeypatch.setenv("OVN_LAB_FAULT_FIRST_BOOT", "h1")
        up2 = second("up", "--backend", "vagrant", timeout=1500).stdout
        monkeypatch.delenv("OVN_LAB_FAULT_FIRST_BOOT")
        print(up2)
        assert "configured as they booted: c1\n" in up2, up2
        failed = "h1: ovn-lab-first-boot.service did not configure it (failed, result exit-code, exit status 2)"
        assert f"{failed}; provisioning it over ssh instead" in up2, up2
        assert "h1 # tail -n 15 /var/log/ovn-lab/first-boot.log" in up2 and "unknown steps ['fault']" in up2, up2
        assert "OVS, underlay, br-int on h1; then ovn-controller" in up2, up2
        assert "lab t-vm2 is up" in up2, up2
        assert "ssl:192.168.7.61:6642" in second.exec("h1", "ovs-vsctl get open . external_ids:ovn-remote")
        assert second.exec("h1", "ovn-appctl -t ovn-controller connection-status").strip() == "connected"
        second("demo", timeout=600)
        assert second("check").returncode == 0
        assert cli("check").returncode == 0
    finally:
        second("teardown", check=False, timeout=300)
    assert _libvirt_objects("t-vm2_") == []
    assert cli("check").returncode == 0
    kernel = Path("/var/lib/libvirt/images/t-vm_vmlinuz")
    uploaded = kernel.stat().st_mtime_ns
    again = cli("up", timeout=600).stdout + cli("demo", timeout=600).stdout
    assert changes(again) == [], changes(again)
    assert kernel.stat().st_mtime_ns == uploaded  # the same kernel is kept, not uploaded again (root's 0600)
    # workshop features on VMs: checks (with a 1500-byte DF ping across the tunnel), a systemd fault,
    # snapshots, plain ssh, capture
    assert "1500-byte frames cross the tunnel" in cli("check").stdout
    cli("exercise.start", "controller-stopped")
    assert "ovn-host-02     ovn-controller is not running on ovn-host-02" in cli("check", check=False).stdout
    cli("exercise.solve")
    cli("snapshot", "save")
    cli("demo", "--reset")
    cli("snapshot", "restore")
    assert cli("check").returncode == 0
    r = cli.ssh("ovn-host-01", "id -un; ip -br addr show enp9s0")
    assert r.returncode == 0 and r.stdout.startswith("root\n") and "192.168.1.62/24" in r.stdout, r
    ping = cli.background("ovn-host-01", "sleep 2; ip netns exec vm1 ping -c 4 -i 0.3 10.0.0.13")
    cap = cli("capture", "ovn-host-01", "--seconds", "6").stdout
    ping.wait()
    assert "Geneve" in cap and "vni 0x1" in cap, cap
    # invoke killed while it provisions: `up` again finishes (once the killed run's last steps ended)
    r = interrupt(cli, ["up"], "… OVS, underlay", signal.SIGKILL)
    assert r.returncode == -signal.SIGKILL, r.stdout
    assert "lab t-vm is up" in finish(cli, "up")
    # Ctrl-C while it provisions (to invoke and all it started): the same
    r = interrupt(cli, ["up"], "… OVS, underlay", signal.SIGINT, after=2, group=True)
    assert r.returncode in (1, 130), r.stdout
    assert "lab t-vm is up" in finish(cli, "up")
    # ovn-controller killed on a VM: its unit restarts it (Restart=on-failure), check says what it sees
    # meanwhile, and up && demo leave a lab that passes check
    cli.exec("ovn-host-01", "kill -9 $(cat /run/ovn/ovn-controller.pid)")
    seen = cli("check", check=False)
    print("check after ovn-controller was killed:", [ln for ln in seen.stdout.splitlines() if "FAIL" in ln])
    assert "Traceback" not in seen.stdout + seen.stderr
    cli("up", timeout=600)
    cli("demo", timeout=600)
    assert cli("check").returncode == 0
    # the lab comes back after a VM reboot: services enabled, system-id kept, underlay and its altname back
    subprocess.run(cli.exec_argv("ovn-host-02", "systemctl reboot"), cwd=ROOT, capture_output=True, timeout=60)
    time.sleep(15)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        r = subprocess.run(
            cli.exec_argv("ovn-central-01", "ovn-sbctl --bare --columns=ip find encap chassis_name=ovn-host-02"),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        # bounded by the ssh config (ConnectTimeout, ServerAlive*): exec on a rebooting VM fails, never hangs
        t0 = time.monotonic()
        up = subprocess.run(cli.exec_argv("ovn-host-02", "uptime"), cwd=ROOT, capture_output=True, timeout=60)
        print(f"exec uptime during reboot: rc={up.returncode} in {time.monotonic() - t0:.1f} s")
        if "192.168.1.63" in r.stdout and up.returncode == 0 and b"up 0 min" not in up.stdout:
            break
        time.sleep(5)
    check_infrastructure(cli, IPS)
    assert "192.168.1.63/24" in cli.exec("ovn-host-02", "ip -br addr show enp9s0")
    assert cli.exec("ovn-host-01", "systemctl is-enabled openvswitch-switch ovn-host").split() == ["enabled"] * 2
    assert _libvirt_objects("t-vm_")
    # the lab's state lost, Vagrant's with it: teardown still removes every domain, network and volume
    shutil.rmtree(cli.config.parent / ".lab" / "t-vm")
    cli("teardown")
    assert _libvirt_objects("t-vm_") == []
    # teardown --box, as the user who built the box: the box leaves their Vagrant and its pool copy goes
    cli("teardown", "--box")
    assert "ovn-lab/bookworm" not in subprocess.run(["vagrant", "box", "list"], capture_output=True, text=True).stdout
    assert _libvirt_objects("ovn-lab-VAGRANTSLASH-bookworm") == []
