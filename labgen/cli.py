"""How a task meets the user: each invoke task makes one `call`. A LabError prints as one line on stderr
(with its evidence below) and exits 2 for bad input, 1 for a failure; an interrupt exits 130; anything
else is a bug in ovn-lab and shows its traceback, with a line saying so."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any, NoReturn

BUG = "this is a bug in ovn-lab, not a problem of your lab: please report the traceback above"


def call(target: str, *args: Any, **kw: Any) -> Any:
    """Run `module:function` (imported only now, so `invoke --list` stays fast). A function that returns
    False (a check that found problems) exits 1."""
    from .errors import LabError

    module, name = target.split(":")
    try:
        result = getattr(importlib.import_module(module), name)(*args, **kw)
        sys.stdout.flush()  # a reader that went away is found here, not in the interpreter's last flush
    except LabError as e:
        fail(e)
    except BrokenPipeError:
        # the reader went away (`invoke status --json | head`): what it wanted was written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        _stderr("\ninterrupted: `invoke up` finishes the lab, `invoke teardown` removes it")
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        _stderr(BUG)
        sys.exit(1)
    if result is False:
        sys.exit(1)
    return result


def fail(e: Any) -> NoReturn:
    from .errors import visible
    from .ui import console, errors

    console.file.flush()
    for line in e.lines():  # each names a path or a value from the input: shown, never run by the terminal
        errors.print(f"✗ {visible(line)}", markup=False, style="red")
    if e.evidence:
        errors.print(visible(e.evidence.rstrip(), keep="\n\t"), markup=False, style="dim")
    sys.exit(e.exit_code)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
