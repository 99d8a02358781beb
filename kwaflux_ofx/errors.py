"""The one exception type users see: a message that names the file and the problem."""

from __future__ import annotations

import os


class KwafluxError(Exception):
    """An error a user can act on. ``str()`` is one line naming the file (when there is one)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = os.fspath(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ModelError(KwafluxError):
    """A model file that cannot be used (not ONNX, wrong shape, wrong scale...)."""


class MediaError(KwafluxError):
    """An image or video that cannot be read or written."""
