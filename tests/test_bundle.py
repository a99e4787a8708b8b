"""Tier model: the bundle's manifest (labgen/bundle.py) and `invoke bundle --verify` on a small made-up bundle,
and `bundle_apt` of scripts/apt-source (what setup --from runs first) on one with a real one-package archive:
apt reads that archive only, from a folder whose name has a space, and a damaged, cut or foreign bundle is
refused before anything is installed. The real bundle and setup from it are the offline tier's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from labgen import bundle

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.model
DEBIAN12 = (
    "ID=debian" in Path("/etc/os-release").read_text() and 'VERSION_ID="12"' in Path("/etc/os-release").read_text()
)
needs_debian12 = pytest.mark.skipif(not DEBIAN12, reason="bundle_apt installs onto Debian 12 only")


@pytest.fixture
def made(tmp_path: Path) -> Path:
    b = tmp_path / "b"
    for rel, text in {
        "debs/a.deb": "a",
        "debs/Packages": "P",
        "wheels/x.whl": "x",
        "box/name": "ovn-lab/bookworm",
    }.items():
        (b / rel).parent.mkdir(parents=True, exist_ok=True)
        (b / rel).write_text(text)
    bundle.write_manifest(b)
    return b


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A bundle on a stick whose label has a space: one package, indexed as invoke bundle indexes."""
    b = tmp_path / "USB DISK" / "ovn lab"
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    control = "Package: ovnlab-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: probe\n"
    (pkg / "DEBIAN/control").write_text(control)
    (b / "debs").mkdir(parents=True)
    argv = ["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(b / "debs/ovnlab-probe_1.0_all.deb")]
    subprocess.run(argv, check=True, capture_output=True)
    bundle.index(b / "debs")
    bundle.write_manifest(b)
    return b


def verify(b: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "invoke", "bundle", "--verify", str(b)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)


def apt_source(b: Path, then: str) -> subprocess.CompletedProcess:
    """bundle_apt as setup runs it, then `then` (argv is fixed here; the folder is $1, never in the text)."""
    script = f'set -euo pipefail; here={ROOT}; . "$here/scripts/apt-source"; bundle_apt "$1"; {then}'
    return subprocess.run(["bash", "-c", script, "bash", str(b)], capture_output=True, text=True)


def test_a_whole_bundle_verifies(made: Path) -> None:
    r = verify(made)
    assert r.returncode == 0, r
    assert "4 files" in r.stdout and "all whole" in r.stdout, r.stdout


def test_missing_damaged_and_unlisted_files_are_named(made: Path) -> None:
    (made / "debs/a.deb").write_text("A")
    (made / "wheels/x.whl").unlink()
    (made / "wheels/y.whl").write_text("y")  # a cut manifest would name neither
    r = verify(made)
    assert r.returncode == 2, r
    first = r.stderr.splitlines()[0]
    assert "1 file(s) missing, 1 damaged, 1 not in the manifest (wheels/x.whl, debs/a.deb, wheels/y.whl)" in first
    assert "fix: copy the bundle again" in first, r.stderr
    assert "missing: wheels/x.whl" in r.stderr and "damaged: debs/a.deb" in r.stderr, r.stderr


def test_a_folder_without_a_manifest_is_no_bundle(tmp_path: Path) -> None:
    r = verify(tmp_path)
    assert r.returncode == 2, r
    assert "no MANIFEST, so not a whole bundle" in r.stderr, r.stderr


def test_a_mangled_manifest_line_is_named(made: Path) -> None:
    (made / "MANIFEST").write_text("not a checksum\n")
    r = verify(made)
    assert r.returncode == 2 and "MANIFEST:1: not a checksum line" in r.stderr, r


def test_the_bundle_takes_every_part_of_scripts_packages() -> None:
    names = bundle.apt_packages()
    for part in ("openvswitch-switch", "vagrant-libvirt", "openssh-server", "chromium", "npm", "lxd"):
        assert part in names


@needs_debian12
def test_apt_reads_the_bundle_only_even_from_a_folder_with_a_space(archive: Path) -> None:
    r = apt_source(archive, "apt_cache policy ovnlab-probe openvswitch-switch; apt_get install -s ovnlab-probe")
    assert r.returncode == 0, r
    assert re.search(r"ovnlab-probe:\n  Installed: \(none\)\n  Candidate: 1.0", r.stdout), r.stdout
    # the machine's own sources are not read: a package only they have shows no archive of theirs
    assert "openvswitch-switch:" in r.stdout, r.stdout
    assert "http" not in r.stdout, r.stdout
    assert "Inst ovnlab-probe (1.0" in r.stdout, r.stdout


@needs_debian12
def test_a_damaged_bundle_is_named_before_setup_installs_anything(archive: Path) -> None:
    deb = next((archive / "debs").glob("*.deb"))
    deb.write_bytes(deb.read_bytes()[:-1] + b"X")
    r = apt_source(archive, "echo reached")
    assert r.returncode == 1 and "reached" not in r.stdout, r
    assert f"debs/{deb.name}: FAILED" in r.stdout + r.stderr, r
    assert "fix: copy the bundle again" in r.stderr, r


@needs_debian12
def test_a_cut_manifest_is_refused(archive: Path) -> None:
    lines = (archive / "MANIFEST").read_text().splitlines()
    (archive / "MANIFEST").write_text(lines[0] + "\n")  # still true of what it names
    r = apt_source(archive, "echo reached")
    assert r.returncode == 1 and "reached" not in r.stdout, r
    assert "files the MANIFEST does not name" in r.stderr, r


def test_setup_reads_apt_only_through_apt_source() -> None:
    """Every apt call in the setups goes through apt_get/apt_cache (which --from points at the bundle), but
    the `apt-get update` that --from skips."""
    for script in ("scripts/setup", "scripts/setup-classroom"):
        for n, line in enumerate((ROOT / script).read_text().splitlines(), 1):
            bare = re.search(r"(?<![_\w])apt-(get|cache)\b", line.split("#")[0])
            if bare and '[ -n "$from" ] || apt-get update' not in line:
                pytest.fail(f"{script}:{n}: a bare apt call: {line.strip()}")
