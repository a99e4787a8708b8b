"""The seat engines by name, as lab.toml's `[classroom] engine` and `classroom.up --engine` name them."""

from __future__ import annotations

from .lxd import LxdEngine
from .seats import AccountsEngine, SeatEngine

ENGINES: dict[str, type[SeatEngine]] = {"accounts": AccountsEngine, "lxd": LxdEngine}
