"""Tier model: the bundle's manifest (labgen/bundle.py) and `invoke bundle --verify`, on a small made-up bundle:
every file whole passes; a missing and a damaged file are each named, on one line, with exit 2. The real
bundle and setup from it are the offline tier's (test_offline.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labgen import bundle

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.model


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


def verify(b: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "invoke", "bundle", "--verify", str(b)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)


def test_a_whole_bundle_verifies(made: Path) -> None:
    r = verify(made)
    assert r.returncode == 0, r
    assert "4 files" in r.stdout and "all whole" in r.stdout, r.stdout


def test_missing_and_damaged_files_are_named(made: Path) -> None:
    (made / "debs/a.deb").write_text("A")
    (made / "wheels/x.whl").unlink()
    r = verify(made)
    assert r.returncode == 2, r
    first = r.stderr.splitlines()[0]
    assert "1 file(s) missing, 1 damaged (wheels/x.whl, debs/a.deb)" in first, r.stderr
    assert "fix: copy the bundle again" in first, r.stderr
    assert "missing: wheels/x.whl" in r.stderr and "damaged: debs/a.deb" in r.stderr, r.stderr


def test_a_folder_without_a_manifest_is_no_bundle(tmp_path: Path) -> None:
    r = verify(tmp_path)
    assert r.returncode == 2, r
    assert "no MANIFEST, so not a whole bundle" in r.stderr, r.stderr


def test_the_bundle_takes_every_part_of_scripts_packages() -> None:
    names = bundle.apt_packages()
    for part in ("openvswitch-switch", "vagrant-libvirt", "openssh-server", "chromium", "npm", "lxd"):
        assert part in names
