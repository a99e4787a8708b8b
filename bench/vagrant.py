"""vagrant backend: `invoke up` beside the probe's tuned `vagrant up` (../shared/probes/vagrant, same box),
per-stage times, `invoke demo`, the median guest-command round trip, teardown. Minutes under TCG.
Usage (root, libvirtd running, box built): python3 bench/vagrant.py [--skip-probe]"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, invoke, lab_toml, save, timed

sys.path.insert(0, str(ROOT))


def probe(tmp: Path) -> float:
    """The probe's lab/Vagrantfile and shell provisioner, on our box, in a VAGRANT_HOME qemu can read."""
    from labgen.backends.vagrant.box import box_file

    lab = tmp / "probe-lab"
    shutil.copytree(SHARED / "probes/vagrant/lab", lab)
    vf = lab / "Vagrantfile"
    vf.write_text(vf.read_text().replace("/tmp/vagrant-probe/lab", str(lab)))
    env = dict(os.environ, VAGRANT_HOME=str(tmp / "vagrant.d"), VAGRANT_CWD=str(lab))
    os.chmod(tmp, 0o755)
    timed(["vagrant", "box", "add", "--name", "local/bookworm-ovn", str(box_file("ovn-lab/bookworm"))], env=env)
    try:
        dt, _ = timed(["vagrant", "up", "--provider=libvirt"], env=env)
    finally:
        timed(["vagrant", "destroy", "-f"], env=env, check=False)
        for net in ("ovn-lab", "vagrant-mgmt"):
            timed(["virsh", "-c", "qemu:///system", "net-destroy", net], check=False)
            timed(["virsh", "-c", "qemu:///system", "net-undefine", net], check=False)
        out = timed(["virsh", "-c", "qemu:///system", "vol-list", "default"], check=False)[1]
        for vol in re.findall(r"^\s*(local-VAGRANTSLASH-bookworm-ovn\S*)", out, re.M):
            timed(["virsh", "-c", "qemu:///system", "vol-delete", "--pool", "default", vol], check=False)
    return dt


def round_trip(config: Path, n: int = 20) -> float:
    from labgen.lab import open_lab

    _, backend = open_lab(config)
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        assert backend.run("ovn-host-01", ["true"]).ok
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-probe", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ovnlab-vbench-"))
    res: dict[str, object] = {}
    if not args.skip_probe:
        res["probe_vagrant_up"] = probe(tmp)
        print(f"probe: vagrant up (3 VMs + shell provisioning): {res['probe_vagrant_up']:.1f} s", flush=True)
    config = lab_toml(tmp / "vbench", "vbench")
    try:
        t_up, out = invoke("up", "--backend", "vagrant", config=config)
        stages = {m[1]: float(m[2]) for m in re.finditer(r"^✓ (.+?) \(([\d.]+) s\)$", out, re.M)}
        t_demo, _ = invoke("demo", config=config)
        t_up2, _ = invoke("up", config=config)
        t_demo2, _ = invoke("demo", config=config)
        rt = round_trip(config)
    finally:
        t_down, _ = invoke("teardown", config=config, check=False)
    res.update(
        invoke_up=t_up,
        stages=stages,
        invoke_demo=t_demo,
        second_up=t_up2,
        second_demo=t_demo2,
        round_trip_median=rt,
        teardown=t_down,
    )
    print(f"invoke up: {t_up:.1f} s")
    for name, dt in stages.items():
        print(f"  {dt:7.1f} s  {name}")
    print(f"invoke demo: {t_demo:.1f} s; second up {t_up2:.1f} s, second demo {t_demo2:.1f} s (no changes)")
    print(f"guest command round trip (`true` over ssh with ControlMaster): median {rt:.3f} s")
    print(f"invoke teardown: {t_down:.1f} s")
    print(f"results: {save('vagrant', res)}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
