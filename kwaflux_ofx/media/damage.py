"""Damaged media: a file cut short, frames the decoder rejects or flags, and how they are told.

What a render does with them (docs/upscale.md, *Damaged clips*): a frame that cannot be decoded
is replaced by the last good frame before it (the first good one after it at the very start),
so every later frame keeps its place and the audio stays in sync; the frames predicted from a
broken one, up to the next keyframe, are rendered as decoded (they may show its damage); frames
missing from the end of a file cut short are not invented. Every one is listed, with its source timecode, in the report
and on the console, and the run exits non-zero.
"""

from __future__ import annotations

import os

# Why a frame is broken (the report's "problem").
UNDECODABLE = "could not be decoded"
DECODED_WITH_ERRORS = "decoded with errors"
CUT_SHORT = "missing: the file is cut short"
ENDS_EARLY = "missing: the file's frames end early (damaged)"
PREDICTED = "predicted from a damaged frame"

_EBML = b"\x1a\x45\xdf\xa3"
_SEGMENT = b"\x18\x53\x80\x67"


def _vint(data: bytes, at: int) -> tuple[int | None, int]:
    """An EBML variable-length integer at `at`: (value or None when 'unknown', next offset)."""
    first = data[at]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad EBML size")
    value = first & (0xFF >> length)
    for b in data[at + 1 : at + length]:
        value = (value << 8) | b
    unknown = value == (1 << (7 * length)) - 1
    return (None if unknown else value), at + length


def _declared_end(path: str, size: int) -> int | None:
    """Where the container says the file ends (bytes), when its first header says so."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] == b"RIFF":  # AVI, WAV: the RIFF chunk's size
            return int.from_bytes(head[4:8], "little") + 8
        if head[:4] == _EBML:  # Matroska, WebM: the Segment element's size
            try:
                ebml_size, at = _vint(head, 4)
                at += ebml_size or 0
                f.seek(at)
                seg = f.read(12)
                if seg[:4] != _SEGMENT:
                    return None
                seg_size, body = _vint(seg, 4)
            except (ValueError, IndexError):
                return None
            return None if seg_size is None else at + body + seg_size
        if head[4:8] in (b"ftyp", b"wide", b"mdat", b"moov", b"free", b"skip"):
            return _boxes_end(f, size)  # MP4, MOV: top-level boxes one after another
    return None


def _boxes_end(f, size: int) -> int | None:
    """The end of the last top-level ISO box, if one runs past the end of the file."""
    at = 0
    while at + 8 <= size:
        f.seek(at)
        head = f.read(16)
        box = int.from_bytes(head[:4], "big")
        if box == 1 and len(head) >= 16:
            box = int.from_bytes(head[8:16], "big")
        elif box == 0:  # runs to the end of the file
            return None
        if box < 8:
            return None  # not a box structure we understand: say nothing
        at += box
    return at if at > size else None


def cut_short(path: str | os.PathLike) -> tuple[int, int] | None:
    """(bytes present, bytes the container announces) when the file is shorter than its own
    header says (a copy or a recording that stopped), else None."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        end = _declared_end(path, size)
    except OSError:
        return None
    return (size, end) if end is not None and end > size else None


def ranges(frames: dict[int, str]) -> list[tuple[int, int, str]]:
    """Broken frames {index: problem} as runs (first, last, problem) of consecutive indices with
    one problem."""
    out: list[list] = []
    for n in sorted(frames):
        why = frames[n]
        if out and out[-1][1] == n - 1 and out[-1][2] == why:
            out[-1][1] = n
        else:
            out.append([n, n, why])
    return [tuple(r) for r in out]


def describe(runs: list[dict], limit: int = 6) -> str:
    """One line for the console: '2 frames could not be decoded: 30 (00:00:01:05), ...'."""
    frames = sum(r["last"] - r["first"] + 1 for r in runs)
    parts = []
    for r in runs[:limit]:
        where = str(r["first"]) if r["first"] == r["last"] else f"{r['first']}-{r['last']}"
        parts.append(f"{where} ({r['timecode']}) {r['problem']}, {r['rendered_as']}")
    more = f"; and {len(runs) - limit} more runs" if len(runs) > limit else ""
    noun = "frame" if frames == 1 else "frames"
    return f"{frames} damaged source {noun}: " + "; ".join(parts) + more
