"""SMPTE timecode: strings and packed words to frame counts and back, drop-frame included."""

from __future__ import annotations

import re


# -- timecode ----------------------------------------------------------------------------------
def nominal_fps(rate: float) -> int:
    """Timecode counts whole frames per second: 23.976 counts 24, 29.97 counts 30."""
    return max(1, round(rate))


def drop_per_minute(rate: float) -> int:
    """Frame numbers a drop-frame timecode skips each minute (not each tenth): 2 at 29.97,
    4 at 59.94, 0 where drop-frame does not exist."""
    fps = nominal_fps(rate)
    if fps in (30, 60) and abs(rate - fps * 1000 / 1001) < 0.01:
        return fps // 15
    return 0


def is_drop_frame(tc: str) -> bool:
    """SMPTE writes drop-frame timecode with ';' (or '.') before the frames."""
    return bool(re.search(r"[;.]\d+$", tc.strip()))


def timecode_to_frames(tc: str, rate: float) -> int:
    """Frames since 00:00:00:00 for 'HH:MM:SS:FF', or drop-frame 'HH:MM:SS;FF' at 29.97/59.94."""
    parts = re.split(r"[:;.]", tc.strip())
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a timecode: {tc!r}")
    h, m, s, f = (int(p) for p in parts)
    fps = nominal_fps(rate)
    frames = ((h * 60 + m) * 60 + s) * fps + f
    drop = drop_per_minute(rate) if is_drop_frame(tc) else 0
    if drop:
        minutes = h * 60 + m
        frames -= drop * (minutes - minutes // 10)
    return frames


def frames_to_timecode(frames: int, rate: float, drop_frame: bool = False) -> str:
    fps = nominal_fps(rate)
    drop = drop_per_minute(rate) if drop_frame else 0
    frames = int(frames)
    if drop:
        # Put back the frame numbers drop-frame skips, then count as non-drop.
        per_ten = fps * 600 - 9 * drop
        per_one = fps * 60 - drop
        tens, rest = divmod(frames % (24 * 6 * per_ten), per_ten)
        frames = tens * fps * 600 + rest
        if rest > drop:
            frames += drop * ((rest - drop) // per_one)
    frames %= 24 * 3600 * fps
    s, f = divmod(frames, fps)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}{';' if drop else ':'}{f:02d}"


def _bcd(v: int) -> int:
    return (v >> 4) * 10 + (v & 0xF)


def smpte_to_frames(word: int, rate: float) -> int:
    """Decode the first word of an EXR/DPX `smpte:TimeCode` (BCD HH MM SS FF, flag bits masked)."""
    h = _bcd((word >> 24) & 0x3F)
    m = _bcd((word >> 16) & 0x7F)
    s = _bcd((word >> 8) & 0x7F)
    f = _bcd(word & 0x3F)
    return ((h * 60 + m) * 60 + s) * nominal_fps(rate) + f


def frames_to_smpte(frames: int, rate: float) -> int:
    def enc(v: int) -> int:
        return ((v // 10) << 4) | (v % 10)

    h, m, s, f = (int(p) for p in frames_to_timecode(frames, rate).split(":"))
    return (enc(h) << 24) | (enc(m) << 16) | (enc(s) << 8) | enc(f)
