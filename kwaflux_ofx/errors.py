"""The one exception type users see: a message that names the file and the problem."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class KwafluxError(Exception):
    """An error a user can act on. ``str()`` is one line naming the file (when there is one)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = os.fspath(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


def checked(check: Callable[[object, str], T], value: object, what: str) -> T:
    """`check(value, what)` from settings.py, its ValueError turned into a KwafluxError."""
    try:
        return check(value, what)
    except ValueError as exc:
        raise KwafluxError(str(exc)) from None


class ModelError(KwafluxError):
    """A model file that cannot be used (not ONNX, wrong shape, wrong scale...)."""


class MediaError(KwafluxError):
    """An image or video that cannot be read or written."""


def first_line(exc: BaseException | str, limit: int = 300) -> str:
    """The first non-blank line of an error's message, at most `limit` characters; the
    exception's type name when the message is empty (MemoryError() has none), so a report
    always has a reason and this never raises."""
    try:
        text = exc if isinstance(exc, str) else str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error itself
        text = ""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return "unknown error" if isinstance(exc, str) else type(exc).__name__
