"""What goes into the lab's box: packages, files written into the rootfs, kernel modules left out, and
the box's own Vagrantfile (direct kernel boot)."""

from __future__ import annotations

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
    # RSA-3072 host key generation takes ~25 s under TCG: only ed25519 + ecdsa, made on first boot.
    # '$$' because systemd expands $VAR in Exec lines.
    "etc/systemd/system/ssh.service.d/hostkeys.conf": (
        "[Service]\nExecStartPre=\n"
        "ExecStartPre=/bin/sh -c 'for t in ed25519 ecdsa; do [ -s /etc/ssh/ssh_host_$${t}_key ] || "
        'ssh-keygen -q -t $$t -N "" -f /etc/ssh/ssh_host_$${t}_key; done\'\n'
        "ExecStartPre=/usr/sbin/sshd -t\n"
    ),
    "etc/ssh/sshd_config.d/vagrant.conf": (
        "UseDNS no\nHostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
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
