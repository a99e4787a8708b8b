"""Golden files: `python3 tests/regen.py` rewrites them from the current code and removes stale ones
(review with `git diff tests/`); `python3 tests/regen.py --check` changes nothing and exits 1 on drift."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.chdir(Path(__file__).resolve().parents[1])

from tests.golden import HERE, drift, expected  # noqa: E402


def main(argv: list[str]) -> int:
    want = expected()
    found = drift(HERE, want)
    if argv == ["--check"]:
        for line in found:
            print(f"golden drift: tests/{line}")
        print(f"{len(want)} golden files, {len(found)} drifted" + ("; run python3 tests/regen.py" if found else ""))
        return 1 if found else 0
    for rel, text in want.items():
        (HERE / rel).parent.mkdir(exist_ok=True)
        (HERE / rel).write_text(text)
    for line in found:
        if line.endswith("stale (no case makes it)"):
            (HERE / line.split(":")[0]).unlink()
    print(f"{len(want)} golden files written, {len(found)} had drifted; review with: git diff tests/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
