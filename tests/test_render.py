"""Tier 2: the rendered Vagrantfile: golden text, Ruby syntax, and `vagrant validate`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from labgen.backends.vagrant.render import rb
from tests.golden import HERE, RENDER_CASES, vagrantfile

pytestmark = pytest.mark.render


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_golden_vagrantfile(case: str) -> None:
    want = (HERE / "render" / f"{case}.Vagrantfile").read_text()
    assert vagrantfile(case) == want, "python3 tests/regen.py rewrites it; review the diff"


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_ruby_syntax(case: str, tmp_path: Path) -> None:
    if not shutil.which("ruby"):
        pytest.skip("ruby not installed (.ci/run installs it)")
    f = tmp_path / "Vagrantfile"
    f.write_text(vagrantfile(case))
    r = subprocess.run(["ruby", "-c", str(f)], capture_output=True, text=True)
    assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stderr


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_vagrant_validate(case: str, tmp_path: Path) -> None:
    if not shutil.which("vagrant"):
        pytest.skip("vagrant not installed (.ci/run installs it)")
    (tmp_path / "Vagrantfile").write_text(vagrantfile(case).replace("/STATE", str(tmp_path)))
    (tmp_path / "ssh").mkdir()
    for key in ("vm_ed25519", "vagrant-insecure"):  # vagrant validate wants the key files to exist
        (tmp_path / "ssh" / key).write_text("")
    r = subprocess.run(
        ["vagrant", "validate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(Path.home()), "VAGRANT_DEFAULT_PROVIDER": "libvirt"},
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruby_quoting() -> None:
    assert rb('a"b') == '"a\\"b"'
    assert rb("#{`rm -rf /`}") == '"\\#{`rm -rf /`}"'
