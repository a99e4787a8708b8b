"""Preflight logic without touching the host: subnet overlaps, the accelerator choice, the sysctls that
stop a rootless lab."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labgen.backends.netns.host import host_probes as keeper_probes
from labgen.backends.vagrant.libvirt import choose_accel, find_overlaps

pytestmark = pytest.mark.model
MINE = {"underlay.subnet": "192.168.1.0/24", "vagrant.management_subnet": "192.168.121.0/24"}


def test_home_router_wifi_overlap_names_interface_and_suggests_free_subnet() -> None:
    routes = [
        {"dst": "default", "gateway": "192.168.1.1", "dev": "wlan0"},
        {"dst": "192.168.1.0/24", "dev": "wlan0", "prefsrc": "192.168.1.23"},
        {"dst": "192.168.200.0/24", "dev": "eth0"},
    ]
    assert find_overlaps(MINE, routes, []) == [
        "underlay.subnet 192.168.1.0/24 overlaps the host route 192.168.1.0/24 on wlan0",
        "192.168.201.0/24 is free",
    ]


def test_libvirt_network_overlap() -> None:
    got = find_overlaps(MINE, [], [("other-lab-mgmt", "192.168.121.0/24"), ("default", "192.168.122.0/24")])
    assert (
        got[0] == "vagrant.management_subnet 192.168.121.0/24 overlaps the libvirt network other-lab-mgmt "
        "(192.168.121.0/24)"
    )


def test_no_overlap_and_own_bridges_skipped() -> None:
    routes = [
        {"dst": "192.168.1.0/24", "dev": "virbr3"},
        {"dst": "10.20.0.0/16", "dev": "eth0"},
        {"dst": "127.0.0.0/8", "dev": "lo", "type": "local"},
    ]
    assert find_overlaps(MINE, routes, [], skip_devs={"virbr3"}) == []


def test_accelerator_choice() -> None:
    assert choose_accel("tcg", {"vmx"}, True).driver == "qemu"  # forced: whatever the host has
    assert choose_accel("kvm", set(), False).driver == "kvm"
    assert choose_accel("auto", {"vmx"}, True).driver == "kvm"
    assert choose_accel("auto", {"svm"}, True).driver == "kvm"
    # a PVM host: /dev/kvm exists and opens, but without vmx/svm guests hang at boot
    no_hw = choose_accel("auto", {"sse2"}, True)
    assert (no_hw.driver, no_hw.reason) == (
        "qemu",
        "QEMU TCG (software emulation, boots take minutes): the CPU shows no vmx/svm",
    )
    no_dev = choose_accel("auto", {"vmx"}, False)
    assert (no_dev.driver, no_dev.reason.split(": ")[-1]) == ("qemu", "/dev/kvm is not usable")


def test_ssh_control_sockets_live_in_a_directory_only_the_user_enters(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from labgen.backends.vagrant.run import control_dir
    from labgen.errors import BackendFailed

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    d = control_dir()
    assert d == tmp_path / "ovn-lab" and d.stat().st_mode & 0o777 == 0o700
    d.chmod(0o755)  # someone opened it up: no socket goes there
    with pytest.raises(BackendFailed, match="is not a directory only you can enter"):
        control_dir()


@pytest.mark.parametrize(
    ("sysctl", "value", "said"),
    [
        ("user/max_user_namespaces", "0", "user.max_user_namespaces is 0"),
        ("kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone is 0"),
        ("kernel/apparmor_restrict_unprivileged_userns", "1", "AppArmor restricts unprivileged user namespaces"),
    ],
)
def test_doctor_names_the_sysctl_that_stops_rootless_labs(tmp_path: Path, sysctl: str, value: str, said: str) -> None:
    (tmp_path / sysctl).parent.mkdir(parents=True)
    (tmp_path / sysctl).write_text(value + "\n")
    probe = next(p for p in keeper_probes(tmp_path) if p.name == "user namespaces")
    err = probe.check()
    assert err is not None and said in err, err
    assert "sysctl -w" in probe.fix


def _unshare_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `unshare` first on PATH that logs its arguments and refuses --mount-proc, as where /proc may not
    be mounted again (a container with a masked /proc): user and network namespaces alone still work."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "unshare.log"
    (bin_dir / "unshare").write_text(
        f'#!/bin/sh\necho "$@" >> {log}\ncase " $* " in *" --mount-proc "*) '
        'echo "unshare: mount /proc failed: Operation not permitted" >&2; exit 1;; esac\nexit 0\n'
    )
    (bin_dir / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def test_doctor_fails_where_the_keepers_unshare_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """doctor once probed `unshare --user --net --mount true`, which passes where the keeper's own
    --pid --fork --mount-proc is refused: doctor said ok and up failed."""
    _unshare_on_path(tmp_path, monkeypatch)
    probe = next(p for p in keeper_probes(tmp_path) if p.name == "user namespaces")
    err = probe.check()
    assert err is not None and "mount /proc failed" in err, err


def test_doctor_runs_the_keepers_own_unshare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labgen.backends.netns import keeper

    log = _unshare_on_path(tmp_path, monkeypatch)
    next(p for p in keeper_probes(tmp_path) if p.name == "user namespaces").check()
    started: list[list[str]] = []

    def popen(argv: list[str], **_: object) -> None:
        started.append(argv)
        raise OSError("not started")

    monkeypatch.setattr(keeper.subprocess, "Popen", popen)
    with pytest.raises(OSError):
        keeper.Keeper(tmp_path / "state").start()
    probed = log.read_text().split()
    kept = started[0][started[0].index("unshare") + 1 :]
    assert probed[:-1] == kept[: kept.index("sh")] and probed[-1] == "true", (probed, kept)
