"""Rewrite the golden files from the current code: python3 tests/regen.py; then review `git diff tests/`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.chdir(Path(__file__).resolve().parents[1])

from tests.golden import HERE, RENDER_CASES, error_log, model_json, vagrantfile  # noqa: E402

for case in sorted((HERE / "errors").glob("*.toml")):
    case.with_suffix(".log").write_text(error_log(case))
(HERE / "model").mkdir(exist_ok=True)
(HERE / "model" / "lab.json").write_text(model_json(HERE.parent / "lab.toml"))
(HERE / "render").mkdir(exist_ok=True)
for name in RENDER_CASES:
    (HERE / "render" / f"{name}.Vagrantfile").write_text(vagrantfile(name))
print("golden files rewritten; review with: git diff tests/")
