"""Decode a range of frames from a video (PyAV) or an image sequence (OIIO)."""

from __future__ import annotations

import fractions
import os
from collections.abc import Iterator

import numpy as np

from kwaflux_ofx.errors import MediaError, first_line
from kwaflux_ofx.media.probe import MediaInfo, frame_dtype


def read_frames(info: MediaInfo, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, H×W×C array) for media-local frame indices start <= index < stop, in order."""
    if info.kind == "sequence":
        yield from _read_sequence(info, start, stop)
    else:
        yield from _read_video(info, start, stop)


def _read_sequence(info: MediaInfo, start: int, stop: int):
    import OpenImageIO as oiio

    want = {np.uint8: "uint8", np.uint16: "uint16", np.float32: "float"}[frame_dtype(info).type]
    for i in range(start, stop):
        fp = info.frame_path(i)
        if info.seq_suffix and not os.path.exists(fp):
            raise MediaError("frame is missing from the image sequence", fp)
        inp = oiio.ImageInput.open(fp)
        if inp is None:
            raise MediaError(f"cannot read frame: {oiio.geterror()}", fp)
        try:
            size = (inp.spec().width, inp.spec().height)
            if size != (info.width, info.height):
                raise MediaError(
                    f"frame is {size[0]}x{size[1]}, the sequence is {info.width}x{info.height}", fp
                )
            px = inp.read_image(0, 0, 0, min(inp.spec().nchannels, 4), want)
        finally:
            inp.close()
        if px is None:
            raise MediaError("cannot decode frame", fp)
        px = np.asarray(px)
        if px.ndim == 2:
            px = px[:, :, None]
        if px.shape[2] < 3:
            px = np.repeat(px[:, :, :1], 3, axis=2)
        yield i, np.ascontiguousarray(px)


def _read_video(info: MediaInfo, start: int, stop: int):
    import av

    fmt = "rgb24" if frame_dtype(info) == np.uint8 else "rgb48le"
    if info.channels == 4:
        fmt = "rgba" if fmt == "rgb24" else "rgba64le"
    try:
        yield from _decode_video(info, start, stop, fmt)
    except av.FFmpegError as exc:
        # Damaged media fails its clip with the file named, not with ffmpeg's bare words.
        raise MediaError(f"cannot decode video: {first_line(exc)}", info.path) from None


def _decode_video(info: MediaInfo, start: int, stop: int, fmt: str):
    # Seek first; if the demuxer lands past `start` (a seek table that lies, an open GOP),
    # decode again from the top rather than lose frames.
    for seek in (True, False) if start > 0 else (False,):
        done = yield from _decode_pass(info, start, stop, fmt, seek)
        if done:
            return
    raise MediaError(f"cannot reach frame {start} by decoding", info.path)


def _decode_pass(info: MediaInfo, start: int, stop: int, fmt: str, seek: bool):
    """One decode pass; returns False (having yielded nothing) if a seek overshot `start`."""
    import av

    with av.open(info.path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        tb = s.time_base
        first_pts = s.start_time or 0
        rate = fractions.Fraction(info.rate).limit_denominator(1001 * 1000)
        if seek and tb:
            # Seek to the keyframe at or before `start`, then decode forward to it.
            target = first_pts + int((fractions.Fraction(start) / rate) / tb)
            c.seek(target, stream=s, backward=True, any_frame=False)
        expected = None if seek else 0
        for frame in c.decode(s):
            if frame.pts is not None and tb:
                idx = round(float((frame.pts - first_pts) * tb) * float(rate))
            elif expected is not None:
                idx = expected
            else:
                return False  # no timestamps after a seek: position unknown
            if expected is None and idx > start:
                return False
            expected = idx + 1
            if idx < start:
                continue
            if idx >= stop:
                break
            yield idx, frame.to_ndarray(format=fmt)
    return True
