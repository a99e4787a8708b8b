"""The backend registry: name -> class, imported only when used (the netns backend needs no libvirt)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UnknownName

if TYPE_CHECKING:
    from ..model import Lab
    from .base import Backend

BACKENDS = {
    "netns": "labgen.backends.netns.backend:NetnsBackend",
    "vagrant": "labgen.backends.vagrant.backend:VagrantBackend",
}


def get_backend(name: str, lab: Lab) -> Backend:
    if name not in BACKENDS:
        raise UnknownName("backend", name, sorted(BACKENDS))
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(lab)  # type: ignore[no-any-return]


def every_backend(lab: Lab) -> list[Backend]:
    """One of each registered backend for `lab` (doctor, and teardown when the lab's state was lost)."""
    return [get_backend(name, lab) for name in BACKENDS]
