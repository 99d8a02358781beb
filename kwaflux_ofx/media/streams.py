"""Copy what a source holds beside its picture into a new file: audio, subtitles, chapters."""

from __future__ import annotations

import fractions
import logging

log = logging.getLogger(__name__)


def copy_streams(
    container,
    path: str,
    source: str,
    t0: float,
    t1: float,
    *,
    audio: bool = True,
    subtitles: bool = True,
) -> None:
    """Copy the source's audio and subtitle streams for [t0, t1) seconds into `container` (being
    written to `path`), packets untouched, and its chapters in that span, shifted to start at 0.

    These go in before any video: they are small, and the muxer's interleaving queue then holds
    only them while the video streams in. A stream the output container cannot hold (AAC in
    MXF, SRT in MP4) is left out with a warning naming it.
    """
    import av

    with av.open(source) as src:
        _copy_chapters(src, container, t0, t1)
        wanted = [
            *(src.streams.audio if audio else ()),
            *(src.streams.subtitles if subtitles else ()),
        ]
        spans = {}  # input stream index -> (output stream, first pts kept, end pts)
        for s_in in wanted:
            try:
                s_out = container.add_stream_from_template(s_in)
            except (ValueError, av.error.FFmpegError) as exc:
                name = s_in.codec_context.name if s_in.codec_context else "unknown codec"
                log.warning("%s: %s (%s) not copied: %s", path, s_in.type, name, exc)
                continue
            s_out.metadata.update(s_in.metadata)  # language, title
            tb = s_in.time_base
            first = s_in.start_time or 0
            spans[s_in.index] = (s_out, first + int(t0 / tb), first + int(t1 / tb))
        if not spans:
            return
        streams = [src.streams[i] for i in spans]
        if t0 > 0:
            lead = next((s for s in streams if s.type == "audio"), streams[0])
            src.seek(spans[lead.index][1], stream=lead, backward=True)
        past_end: set[int] = set()
        for packet in src.demux(streams):
            s_out, offset, end = spans[packet.stream.index]
            if packet.pts is not None and packet.pts >= end:
                past_end.add(packet.stream.index)
                if len(past_end) == len(spans):
                    break  # every stream is past the span: the rest of the file is not read
            if packet.pts is None or packet.size == 0 or not offset <= packet.pts < end:
                continue
            packet.pts -= offset
            packet.dts = packet.pts if packet.dts is None else packet.dts - offset
            packet.stream = s_out
            container.mux(packet)


def _copy_chapters(src, container, t0: float, t1: float) -> None:
    """The chapters overlapping [t0, t1), cut to it and shifted to start at 0."""
    try:
        chapters = src.chapters()
    except (AttributeError, ValueError) as exc:  # an older PyAV, or a container without them
        log.debug("no chapters read from %s: %s", src.name, exc)
        return
    kept = []
    for ch in chapters:
        tb = fractions.Fraction(ch["time_base"])
        start, end = ch["start"] * tb, ch["end"] * tb
        if end <= t0 or start >= t1:
            continue
        a = max(start, fractions.Fraction(t0)) - fractions.Fraction(t0)
        b = min(end, fractions.Fraction(t1)) - fractions.Fraction(t0)
        kept.append(
            {
                "id": len(kept) + 1,
                "start": round(a / tb),
                "end": round(b / tb),
                "time_base": ch["time_base"],
                "metadata": dict(ch.get("metadata") or {}),
            }
        )
    if kept:
        container.set_chapters(kept)
