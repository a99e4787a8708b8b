"""What goes into the lab's box: packages, files written into the rootfs, kernel modules left out, and
the box's own Vagrantfile (direct kernel boot)."""

from __future__ import annotations

from provision.facts import FIRST_BOOT_UNIT, SEED_SERIAL
from provision.names import VM_UNDERLAY_NIC
from provision.steps.node import SSHD_CONF, SSHD_TEXT

PACKAGES = [
    "systemd-sysv",
    "systemd",
    "udev",
    "dbus",
    "libpam-systemd",
    "kmod",
    "iproute2",
    "ifupdown",
    "isc-dhcp-client",
    "openssh-server",
    "sudo",
    "python3",
    "linux-image-amd64",
    "initramfs-tools",
    "zstd",
    "openvswitch-switch",
    "ovn-central",
    "ovn-host",
    "iputils-ping",
    "netbase",
    "procps",
    "less",
    "tcpdump",
]
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 biosdevname=0 mitigations=off quiet"
SIZE_GIB = 4
# Kernel module trees no lab VM needs: smaller image, faster depmod and boot.
PRUNE_MODULES = [
    "drivers/gpu",
    "drivers/media",
    "drivers/net/wireless",
    "drivers/infiniband",
    "drivers/staging",
    "drivers/bluetooth",
    "drivers/isdn",
    "drivers/iio",
    "sound",
    "net/bluetooth",
    "net/mac80211",
    "net/wireless",
    "drivers/net/ethernet",
    "drivers/scsi/lpfc",
    "drivers/scsi/qla2xxx",
    "drivers/scsi/mpt3sas",
    "drivers/usb",
]

REMOTE_DIR = "/opt/ovn-lab"  # where the provisioner package goes inside the VMs (first boot, or ssh)
FIRST_BOOT = "usr/local/sbin/ovn-lab-first-boot"
# what the box can do, read by the backend from the box's folder (a box built before has no such file)
FEATURES = {"first_boot": FIRST_BOOT_UNIT, "seed_serial": SEED_SERIAL}

FILES = {
    "etc/hostname": "bookworm\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 bookworm\n::1 localhost ip6-localhost ip6-loopback\n",
    "etc/fstab": "/dev/vda / ext4 defaults,noatime,errors=remount-ro 0 1\n",
    "etc/network/interfaces": (
        "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n"
        "allow-hotplug eth0\niface eth0 inet dhcp\n"
    ),
    # never let boot wait long for the management DHCP
    "etc/systemd/system/networking.service.d/timeout.conf": "[Service]\nTimeoutStartSec=60\n",
    "etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD:ALL\n",
    # RSA-3072 host key generation takes ~25 s under TCG: only ed25519 + ecdsa, made on first boot, by a
    # unit of their own that runs beside the first-boot unit (sshd waits for both). '$$' because systemd
    # expands $VAR in Exec lines.
    "etc/systemd/system/ssh-hostkeys.service": (
        "[Unit]\nDescription=ssh host keys (ed25519, ecdsa), made once\nBefore=ssh.service\n\n"
        "[Service]\nType=oneshot\n"
        "ExecStart=/bin/sh -c 'for t in ed25519 ecdsa; do [ -s /etc/ssh/ssh_host_$${t}_key ] || "
        'ssh-keygen -q -t $$t -N "" -f /etc/ssh/ssh_host_$${t}_key; done\'\n'
    ),
    "etc/systemd/system/ssh.service.d/hostkeys.conf": (
        "[Unit]\nWants=ssh-hostkeys.service\nAfter=ssh-hostkeys.service\n\n"
        "[Service]\nExecStartPre=\nExecStartPre=/usr/sbin/sshd -t\n"
    ),
    "etc/ssh/sshd_config.d/vagrant.conf": (
        "UseDNS no\nHostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
    ),
    # step root-ssh's file, in place before sshd first starts: the step finds it and reloads no sshd
    SSHD_CONF.lstrip("/"): SSHD_TEXT,
    # The node's plan applied as it boots, right after sshd starts: run before it (sshd waiting), the work
    # competed with the rest of the boot on the one vCPU and ended later (measured under TCG); `up` waits
    # for the unit to end while Vagrant finishes, then reads it back.
    # Once only (a reboot after a failure is left to the ssh path), and only with the lab's seed disk, a
    # tar of the provisioner and the request (`{"steps": [...], "plan": {...}}`) that `up` made for it.
    FIRST_BOOT: (
        "#!/bin/sh\n"
        "# ovn-lab-first-boot [--has-seed]: apply the request on the lab's seed disk (found by its serial)\n"
        "set -eu\n"
        "seed() {\n"
        "  for f in /sys/block/*/serial; do\n"
        f'    [ "$(cat "$f" 2>/dev/null)" = {SEED_SERIAL} ] || continue\n'
        '    d=${f%/serial}; echo "/dev/${d##*/}"; return 0\n'
        "  done\n"
        "  return 1\n"
        "}\n"
        'if [ "${1:-}" = --has-seed ]; then seed >/dev/null; exit; fi\n'
        "umask 077\n"
        "dev=$(seed)\n"
        "mkdir -p /var/lib/ovn-lab && touch /var/lib/ovn-lab/first-boot.done\n"
        f'rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar -x -f "$dev" -C {REMOTE_DIR}\n'
        f"exec env PYTHONPATH={REMOTE_DIR} python3 -S -m provision --first-boot {REMOTE_DIR}/first-boot.json\n"
    ),
    f"etc/systemd/system/{FIRST_BOOT_UNIT}": (
        "[Unit]\n"
        "Description=ovn-lab: apply this node's plan from the lab's seed disk, once\n"
        "ConditionPathExists=!/var/lib/ovn-lab/first-boot.done\n"
        f"Wants=openvswitch-switch.service sys-subsystem-net-devices-{VM_UNDERLAY_NIC}.device\n"
        f"After=sys-subsystem-net-devices-{VM_UNDERLAY_NIC}.device ssh.service\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecCondition=/{FIRST_BOOT} --has-seed\n"
        f"ExecStart=/{FIRST_BOOT}\n"
        "TimeoutStartSec=400\n"
        "StandardOutput=journal+console\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    ),
    # Vagrant's Debian hostname step restarts ifup@ for every interface; tolerate non-hotplug ones
    "etc/systemd/system/ifup@.service.d/vagrant.conf": (
        "[Service]\nExecStart=\n"
        "ExecStart=/bin/sh -ec 'ifup --allow=hotplug %I; "
        "ifquery --state %I || ! ifquery --allow=hotplug -l | grep -qx %I'\n"
    ),
}

BOX_VAGRANTFILE = f"""# Box defaults: direct kernel boot (no bootloader in the image), no synced folder.
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.join(__dir__, "vmlinuz")
    libvirt.initrd = File.join(__dir__, "initrd.img")
    libvirt.cmd_line = "{KERNEL_CMDLINE}"
    libvirt.disk_bus = "virtio"
  end
end
"""
