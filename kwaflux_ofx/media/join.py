"""Join finished segments of one render into a single file, packets copied (lossless)."""

from __future__ import annotations

import fractions
import logging

from kwaflux_ofx.errors import MediaError, first_line

log = logging.getLogger(__name__)


def join_segments(
    parts: list[str],
    out: str,
    rate: float,
    *,
    timecode: str | None = None,
    comment: str | None = None,
    audio: tuple[str, float, float] | None = None,
) -> int:
    """Write `parts` (video-only files of one codec, in order) into `out` one after another,
    with the source's audio for [t0, t1) seconds, the timecode and the comment; returns the
    number of video frames written. Intra-frame codecs only: every part starts on its own."""
    import av

    from kwaflux_ofx.media.encode import copy_audio

    fps = fractions.Fraction(rate).limit_denominator(1001 * 1000)
    step = 1 / fps
    try:
        with av.open(out, "w") as dst:
            with av.open(parts[0]) as first:
                # the rate, or the mov muxer writes no timecode track
                v_out = dst.add_stream_from_template(first.streams.video[0], rate=fps)
            if timecode is not None:
                v_out.metadata["timecode"] = timecode
                dst.metadata["timecode"] = timecode
            if comment:
                dst.metadata["comment"] = comment
            if audio is not None:
                copy_audio(dst, out, *audio)  # before the video: see copy_audio
            frames = 0
            for part in parts:
                frames += _copy_part(dst, v_out, part, frames * step)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot join the finished segments: {first_line(exc)}", out) from None
    return frames


def _copy_part(dst, v_out, part: str, start: fractions.Fraction) -> int:
    """Copy one part's video packets, shifted to start at `start` seconds; returns its frames."""
    import av

    n = 0
    with av.open(part) as src:
        s = src.streams.video[0]
        tb = s.time_base
        shift = round(start / tb)
        first = s.start_time or 0
        for packet in src.demux(s):
            if packet.size == 0:
                continue
            if packet.pts is not None:
                packet.pts += shift - first
            if packet.dts is not None:
                packet.dts += shift - first
            packet.stream = v_out
            dst.mux(packet)
            n += 1
    if n == 0:
        raise av.InvalidDataError(0, f"{part} holds no frames")
    return n
