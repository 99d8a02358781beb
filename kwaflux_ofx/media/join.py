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
    streams_from: tuple[str, float, float] | None = None,
    audio: bool = True,
    starts: list[float] | None = None,
) -> int:
    """Write `parts` (video-only files of one codec, in order) into `out` one after another,
    with the source's subtitles, chapters and (with `audio`) audio for [t0, t1) seconds of
    `streams_from` (source, t0, t1), the timecode and the comment; returns the number of video
    frames written. Every part starts on a keyframe of its own, so each joins as it is. Each
    part is placed where the one before ends at `rate` or, given `starts`, at its own start
    (seconds): parts stamped with a variable-rate source's times keep them."""
    import av

    from kwaflux_ofx.media.streams import copy_streams

    fps = fractions.Fraction(rate).limit_denominator(1001 * 1000)
    step = 1 / fps
    try:
        with av.open(out, "w") as dst:
            with av.open(parts[0]) as first:
                v_in = first.streams.video[0]
                # opaque: the parameters as they are (AV1's template would otherwise look for an
                # encoder named after its decoder, libdav1d); the rate, or the mov muxer writes
                # no timecode track
                v_out = dst.add_stream_from_template(v_in, rate=fps, opaque=True)
                # The tag names the ProRes profile (apcs = LT, ap4x = 4444 XQ): the muxer would
                # otherwise write its default one (apch, HQ) whatever the frames are.
                v_out.codec_context.codec_tag = v_in.codec_context.codec_tag
            if timecode is not None:
                v_out.metadata["timecode"] = timecode
                dst.metadata["timecode"] = timecode
            if comment:
                dst.metadata["comment"] = comment
            if streams_from is not None:
                copy_streams(dst, out, *streams_from, audio=audio)  # before the video
            lag = None if starts is None else _reorder_lag(parts)
            frames = 0
            for k, part in enumerate(parts):
                at = frames * step if starts is None else fractions.Fraction(starts[k])
                frames += _copy_part(dst, v_out, part, at, step, lag)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot join the finished segments: {first_line(exc)}", out) from None
    return frames


def _part_pts(part: str) -> tuple[fractions.Fraction, list[int | None]]:
    """A part's time base and its video packets' presentation times, in decode order."""
    import av

    with av.open(part) as src:
        s = src.streams.video[0]
        return s.time_base, [p.pts for p in src.demux(s) if p.size]


def _reorder_lag(parts: list[str]) -> fractions.Fraction | None:
    """How far (seconds) decode times must trail the sorted presentation times so that no frame
    is decoded after it is shown, over all parts; None where a part has a packet without one.

    Parts stamped with a variable rate's times need their decode times made anew: an encoder
    with B-frames steps them a frame at a time (x264 takes the times `delay` frames back), so
    across a held picture they fall behind, and an MP4's track, whose length is the sum of the
    decode steps, would end up to the hold's length too short."""
    lag = fractions.Fraction(0)
    for part in parts:
        tb, pts = _part_pts(part)
        if any(p is None for p in pts):
            return None
        lag = max(lag, *((t - p) * tb for t, p in zip(sorted(pts), pts, strict=True)))
    return lag


def _copy_part(
    dst,
    v_out,
    part: str,
    start: fractions.Fraction,
    step: fractions.Fraction,
    lag: fractions.Fraction | None = None,
) -> int:
    """Copy one part's video packets, shifted to start at `start` seconds; returns its frames.
    Given `lag`, each packet's decode time is the part's sorted presentation times moved down
    by it (see _reorder_lag)."""
    import av

    n = 0
    if lag is not None:
        _, pts = _part_pts(part)
        shown = iter(sorted(pts))
    with av.open(part) as src:
        s = src.streams.video[0]
        tb = s.time_base
        shift = round(start / tb)
        first = s.start_time or 0
        packets = (p for p in src.demux(s) if p.size)
        if lag is not None:
            packets = _restamped(packets, shown, round(lag / tb))
        for packet in _with_dts(packets, step / tb):
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


def _restamped(packets, shown, lag: int):
    for packet in packets:
        packet.dts = next(shown) - lag
        yield packet


# Packets held while looking for the first decode time: more than any encoder reorders.
_REORDER_MAX = 16


def _with_dts(packets, step: fractions.Fraction):
    """The packets with every decode time set. Matroska stores none: its demuxer leaves the
    first few of a stream with B-frames unset (a short part, all of them), and the muxer, fed
    those after another part's, guesses times that run backwards. Those before the first known
    one are put a frame apart below it; a part with none gets them from its presentation times."""
    held = []
    for packet in packets:
        if held is not None and packet.dts is None and len(held) < _REORDER_MAX:
            held.append(packet)
            continue
        if held:
            yield from _filled(held, packet.dts, step)
        held = None
        if packet.dts is None:  # past _REORDER_MAX with none known: no reordering
            packet.dts = packet.pts
        yield packet
    if held:
        yield from _filled(held, None, step)


def _filled(held: list, known: int | None, step: fractions.Fraction):
    if any(p.pts is None for p in held):  # nothing to go by: left to the muxer, as before
        yield from held
        return
    if known is not None:
        for k, p in enumerate(held):
            p.dts = known - round((len(held) - k) * step)
            yield p
        return
    # In decode order, the presentation times sorted, moved down as far as the most reordered
    # frame needs: rising, and never after a frame's own presentation.
    ordered = sorted(p.pts for p in held)
    lag = max(0, *(t - p.pts for t, p in zip(ordered, held, strict=True)))
    for t, p in zip(ordered, held, strict=True):
        p.dts = t - lag
        yield p
