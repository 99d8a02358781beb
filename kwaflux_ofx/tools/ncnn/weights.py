"""Read weight buffers from an ncnn .bin file in the order the layers ask for them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kwaflux_ofx.errors import ModelError

# Storage tags that prefix a flagged weight buffer in the .bin file.
TAG_FP32 = 0x00000000


TAG_FP16 = 0x01306B47


TAG_BF16 = 0x01348B83


TAG_INT8 = 0x000D4B38


class WeightReader:
    """Sequential reader of a .bin file: flagged buffers (fp32/fp16/bf16) and raw float32 ones."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read ncnn weight file ({exc.strerror})", path) from None
        self.offset = 0

    def _take(self, nbytes: int, what: str) -> bytes:
        end = self.offset + nbytes
        if end > len(self.data):
            raise ModelError(
                f"weight file too short: {what} needs {nbytes} bytes at offset {self.offset}, "
                f"file has {len(self.data)} (does the .bin belong to this .param?)",
                self.path,
            )
        chunk = self.data[self.offset : end]
        # Every buffer is padded to 4-byte alignment.
        self.offset = end + (-nbytes) % 4
        return chunk

    def flagged(self, count: int, what: str) -> np.ndarray:
        """A weight buffer that starts with a storage-type tag."""
        tag = int(np.frombuffer(self._take(4, what), dtype="<u4")[0])
        if tag == TAG_FP16:
            return np.frombuffer(self._take(2 * count, what), dtype="<f2").astype(np.float32)
        if tag == TAG_BF16:
            raw = np.frombuffer(self._take(2 * count, what), dtype="<u2").astype(np.uint32)
            return (raw << 16).view(np.float32)
        if tag == TAG_FP32:
            return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)
        raise ModelError(
            f"{what}: quantized weights (storage tag 0x{tag:08x}) are not supported; "
            "use an fp32 or fp16 model",
            self.path,
        )

    def raw(self, count: int, what: str) -> np.ndarray:
        """A float32 buffer with no tag (biases, slopes, scales)."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)
