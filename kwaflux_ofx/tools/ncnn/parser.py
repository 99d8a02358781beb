"""Read an ncnn .param file (text format) into layers."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kwaflux_ofx.errors import ModelError

PARAM_MAGIC = 7767517


@dataclasses.dataclass
class NcnnLayer:
    """One line of a .param file."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, object]
    line: int

    def get(self, key: int, default=None):
        return self.params.get(key, default)

    def int(self, key: int, default: int = 0) -> int:
        v = self.params.get(key, default)
        if isinstance(v, list):
            raise ModelError(f"layer {self.name}: param {key} is an array, expected a number")
        return int(v)

    def float(self, key: int, default: float = 0.0) -> float:
        v = self.params.get(key, default)
        if isinstance(v, list):
            raise ModelError(f"layer {self.name}: param {key} is an array, expected a number")
        return float(v)

    def array(self, key: int, default: list | None = None) -> list:
        v = self.params.get(key)
        if v is None:
            return list(default or [])
        return v if isinstance(v, list) else [v]


def _parse_value(text: str):
    # A float is spelled with a decimal point or an exponent; everything else is an int.
    if any(ch in text for ch in ".eE") and not text.lstrip("-").isdigit():
        return float(text)
    return int(text)


def parse_param(path: str | os.PathLike) -> list[NcnnLayer]:
    """Parse a text .param file into layers, in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read ncnn param file ({type(exc).__name__})", path) from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or lines[0] != str(PARAM_MAGIC):
        raise ModelError(
            f"not an ncnn text .param file (first line must be {PARAM_MAGIC}; "
            "binary .param.bin files are not supported)",
            path,
        )
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise ModelError("line 2 must hold '<layer count> <blob count>'", path) from None
    layers: list[NcnnLayer] = []
    for lineno, ln in enumerate(lines[2:], start=3):
        parts = ln.split()
        try:
            ltype, lname, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
            ins = parts[4 : 4 + n_in]
            outs = parts[4 + n_in : 4 + n_in + n_out]
            if len(ins) != n_in or len(outs) != n_out:
                raise ValueError
            params: dict[int, object] = {}
            for kv in parts[4 + n_in + n_out :]:
                k, v = kv.split("=", 1)
                key = int(k)
                if key <= -23300:
                    # Array: -23300-index=count,v1,v2,...
                    items = v.split(",")
                    count = int(items[0])
                    values = [_parse_value(x) for x in items[1 : 1 + count]]
                    if len(values) != count:
                        raise ValueError
                    params[-23300 - key] = values
                elif "," in v:
                    # Modern files may spell an array without the count prefix.
                    params[key] = [_parse_value(x) for x in v.split(",")]
                else:
                    params[key] = _parse_value(v)
        except (IndexError, ValueError):
            raise ModelError(f"line {lineno}: malformed layer line: {ln[:80]!r}", path) from None
        layers.append(NcnnLayer(ltype, lname, ins, outs, params, lineno))
    if len(layers) != layer_count:
        raise ModelError(f"header says {layer_count} layers, file has {len(layers)}", path)
    return layers
