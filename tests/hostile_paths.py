"""Calling code that might wait forever on a FIFO, with a bounded wait that never leaves a
blocked thread behind."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

#: Seconds: generous for a loaded machine; a call blocked on a FIFO never returns.
BOUND = 30.0


def release(fifos: Iterable[Path]) -> None:
    """Open each FIFO of ``fifos`` that is still there from the other end, so a call blocked
    opening it returns."""
    for fifo in fifos:
        for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
            try:
                os.close(os.open(fifo, flags))
            except OSError:
                pass


def bounded(call: Callable[[], Any], fifos: Iterable[Path] = ()) -> Any:
    """``call()`` in a thread, waited for at most :data:`BOUND` seconds; what it returned,
    or what it raised, raised again. A call still blocked then is released (see
    :func:`release`) and the test fails."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(BOUND)
    if thread.is_alive():
        release(fifos)
        thread.join(BOUND)
        pytest.fail(f"{call} was still blocked after {BOUND} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")
