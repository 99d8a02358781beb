"""Decode a range of frames from a video (PyAV) or an image sequence (OIIO)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from kwaflux_ofx.errors import MediaError, first_line
from kwaflux_ofx.media.damage import DECODED_WITH_ERRORS, PREDICTED, UNDECODABLE
from kwaflux_ofx.media.probe import MediaInfo, frame_dtype
from kwaflux_ofx.media.timing import FrameNumbers, VfrMode


def read_frames(
    info: MediaInfo, start: int, stop: int, damaged: dict[int, str] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, H×W×C array) for media-local frame indices start <= index < stop, in order.

    A video frame the decoder rejects or flags as damaged is not yielded: it leaves a gap (the
    frames after it keep their indices) and, given `damaged`, is recorded there as
    {index: problem} (media/damage.py)."""
    if info.kind == "sequence":
        yield from _read_sequence(info, start, stop)
    else:
        yield from _read_video(info, start, stop, {} if damaged is None else damaged)


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


def _read_video(info: MediaInfo, start: int, stop: int, damaged: dict[int, str]):
    import av

    fmt = "rgb24" if frame_dtype(info) == np.uint8 else "rgb48le"
    if info.channels == 4:
        fmt = "rgba" if fmt == "rgb24" else "rgba64le"
    try:
        yield from _decode_video(info, start, stop, fmt, damaged)
    except av.FFmpegError as exc:
        # Damaged media fails its clip with the file named, not with ffmpeg's bare words.
        raise MediaError(f"cannot decode video: {first_line(exc)}", info.path) from None


def _decode_video(info: MediaInfo, start: int, stop: int, fmt: str, damaged: dict[int, str]):
    # Seek first where timestamps say where a frame is; if the demuxer lands past `start` (a seek
    # table that lies, an open GOP), decode again from the top rather than lose frames.
    seekable = start > 0 and not info.counted
    for seek in (True, False) if seekable else (False,):
        done = yield from _decode_pass(info, start, stop, fmt, seek, damaged)
        if done:
            return
    raise MediaError(f"cannot reach frame {start} by decoding", info.path)


def _decode_pass(
    info: MediaInfo, start: int, stop: int, fmt: str, seek: bool, damaged: dict[int, str]
):
    """One decode pass; returns False (having yielded nothing) if a seek overshot `start`.

    On a variable-rate source conformed to a constant rate, a slot with no frame of its own
    repeats the frame before it, so frame n always sits at time n / rate and audio stays in sync.
    Elsewhere a gap is left for the caller to report.

    Packets are decoded one by one so a damaged one costs its own frame, not the clip. An
    intra-only codec (MJPEG, ProRes, DNxHD...) is decoded strictly: a packet with any error is
    rejected, and being one frame it leaves exactly one gap. Other codecs conceal what they can
    and flag the frame; a flagged frame is treated as lost too. The frames after a lost or
    flagged one, up to the next keyframe, are given as decoded but recorded as PREDICTED: they
    may carry the damage without the decoder saying so.
    """
    import av

    t = info.timing
    # On the constant rate, slots with no frame of their own repeat the one before.
    fill = t.vfr and info.vfr_mode is VfrMode.CFR
    slots = t.order_slots if fill else ()
    with av.open(info.path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        if s.codec_context.codec.intra_only:
            s.codec_context.options = {"err_detect": "crccheck+explode"}
        numbers = FrameNumbers(t.timing, t.time_base, t.first_pts, info.rate, info.counted, slots)
        if seek:
            c.seek(numbers.pts_for(start), stream=s, backward=True, any_frame=False)
        held = None  # (next slot, pixels) of the last frame decoded
        hurt = [False]  # a frame was lost or damaged since the last keyframe
        for frame in _frames(c, s, numbers, damaged, start, stop, hurt):
            idx = numbers.number(frame.pts)
            if seek and held is None and idx > start:
                return False
            if fill and held is not None:
                for slot in range(max(start, held[0]), min(idx, stop)):
                    yield slot, held[1]
            if idx >= stop:
                return True
            if frame.is_corrupt:
                hurt[0] = True
                if start <= idx:
                    damaged[idx] = DECODED_WITH_ERRORS
                continue  # its slot stays a gap (or, filling, repeats the frame before)
            if frame.key_frame:
                hurt[0] = False
            elif hurt[0] and start <= idx:
                damaged.setdefault(idx, PREDICTED)  # given, but it may carry the damage
            pixels = frame.to_ndarray(format=fmt)
            if idx >= start:
                yield idx, pixels
            held = (idx + 1, pixels)
        if fill and held is not None:
            for slot in range(max(start, held[0]), min(stop, info.frames)):
                yield slot, held[1]
    return True


def _frames(c, s, numbers: FrameNumbers, damaged: dict[int, str], start: int, stop: int, hurt):
    """The stream's decoded frames; a packet the decoder rejects is recorded as lost (where it
    can be placed: by its timestamp, or as the next frame where frames are counted), and sets
    hurt[0]: the frames after it, up to a keyframe, are predicted from what was lost."""
    import av

    try:
        for packet in c.demux(s):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                hurt[0] = True
                if packet.size:
                    lost = numbers.lost(packet.pts, s.codec_context.codec.intra_only)
                    if lost is not None and start <= lost < stop:
                        damaged[lost] = UNDECODABLE
                continue
            yield from frames
    except av.FFmpegError:  # the container itself breaks off: the rest are gaps at the end
        try:
            flushed = s.codec_context.decode(None)
        except av.FFmpegError:
            return
        yield from flushed
