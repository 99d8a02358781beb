"""Copy what a source holds beside its picture into a new file: audio, subtitles, chapters."""

from __future__ import annotations

import fractions
import logging

log = logging.getLogger(__name__)

_MS = fractions.Fraction(1, 1000)
_US = fractions.Fraction(1, 1_000_000)
# The text subtitle codec each output container holds, for a text track it cannot take as is
# (MOV/MP4 hold text only as mov_text; Matroska takes subrip/ass/webvtt but not mov_text).
_TEXT_CODEC = {"mov": "mov_text", "mp4": "mov_text", "matroska": "subrip"}
# Metadata that describes the source's encoding of a track, not a re-encoded one.
_STALE_TAGS = {"duration", "encoder", "handler_name", "bps", "number_of_frames", "number_of_bytes"}


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
    only them while the video streams in. A text subtitle stream the container cannot hold as is
    (SRT or ASS in MP4, mov_text in MKV) is converted to the text codec it holds, cue by cue; any
    other stream it cannot hold (AAC in MXF, a bitmap subtitle) is left out with a warning.
    """
    import av

    with av.open(source) as src:
        _copy_chapters(src, container, t0, t1)
        wanted = [
            *(src.streams.audio if audio else ()),
            *(src.streams.subtitles if subtitles else ()),
        ]
        # input stream index -> (output stream, first pts kept, end pts, converter or None)
        spans = {}
        for s_in in wanted:
            tb = s_in.time_base
            first = s_in.start_time or 0
            offset, end = first + int(t0 / tb), first + int(t1 / tb)
            name = s_in.codec_context.name if s_in.codec_context else "unknown codec"
            if s_in.type == "subtitle" and container.format.name.startswith("mxf"):
                # The MXF muxer takes the stream here and refuses it only when the header is
                # written, which would fail the whole file.
                log.warning("%s: subtitle (%s) not copied: MXF holds no subtitles", path, name)
                continue
            converter = None
            try:
                s_out = container.add_stream_from_template(s_in)
            except (ValueError, av.error.FFmpegError) as exc:
                if s_in.type == "subtitle":
                    converter = _SubtitleConverter.add(container, path, s_in, offset, end, exc)
                if converter is None:
                    if s_in.type != "subtitle":
                        log.warning("%s: %s (%s) not copied: %s", path, s_in.type, name, exc)
                    continue
                s_out = converter.stream
            else:
                s_out.metadata.update(s_in.metadata)  # language, title
            spans[s_in.index] = (s_out, offset, end, converter)
        if not spans:
            return
        streams = [src.streams[i] for i in spans]
        if t0 > 0:
            lead = next((s for s in streams if s.type == "audio"), streams[0])
            src.seek(spans[lead.index][1], stream=lead, backward=True)
        past_end: set[int] = set()
        for packet in src.demux(streams):
            s_out, offset, end, converter = spans[packet.stream.index]
            if packet.pts is not None and packet.pts >= end:
                past_end.add(packet.stream.index)
                if len(past_end) == len(spans):
                    break  # every stream is past the span: the rest of the file is not read
            if packet.pts is None or packet.size == 0 or not offset <= packet.pts < end:
                continue
            if converter is not None:
                for converted in converter.convert(packet):
                    container.mux(converted)
                continue
            packet.pts -= offset
            packet.dts = packet.pts if packet.dts is None else packet.dts - offset
            packet.stream = s_out
            container.mux(packet)
        for _, _, _, converter in spans.values():
            if converter is not None:
                converter.report()


class _SubtitleConverter:
    """Re-encode one text subtitle stream, cue by cue, in the text codec a container holds."""

    def __init__(self, path: str, s_in, s_out, offset: int, end: int):
        self.path, self.s_in, self.stream = path, s_in, s_out
        self.source = s_in.container.name
        self.offset, self.end = offset, end
        self.failed = 0
        self.first_error: Exception | None = None

    @classmethod
    def add(cls, container, path: str, s_in, offset: int, end: int, refused: Exception):
        """A converter with its output stream added to `container`, or None (with a warning
        saying why) where the stream is not text or the container holds no text subtitles."""
        import av

        decoder = s_in.codec_context
        codec = decoder.codec if decoder is not None else None
        name = decoder.name if decoder is not None else "unknown codec"
        if codec is None or not codec.text_sub:
            why = "a bitmap subtitle is not converted to text"
            if codec is None or not codec.bitmap_sub:
                why = "not a text subtitle, so not converted"
            log.warning("%s: subtitle (%s) not copied: %s; %s", path, name, refused, why)
            return None
        target = _TEXT_CODEC.get(container.format.name)
        if target == "subrip" and codec.name in ("ass", "ssa"):
            target = "ass"  # Matroska holds ASS as such: its styles and positions stay
        if target is None:
            log.warning(
                "%s: subtitle (%s) not copied: %s; %s holds no text subtitle codec",
                path, name, refused, container.format.name,
            )  # fmt: skip
            return None
        try:
            decoder.open(strict=False)
            header = _encoder_header(target, decoder.subtitle_header)
            s_out = container.add_stream(target)
            s_out.codec_context.time_base = _MS
            s_out.time_base = _MS
            # The ASS header carries the source's styles (font, size, colours): mov_text
            # writes them into its sample description, ASS into its CodecPrivate.
            s_out.codec_context.subtitle_header = header
            s_out.codec_context.open(strict=False)  # the muxer's header needs its extradata
        except (ValueError, av.error.FFmpegError) as exc:
            log.warning("%s: subtitle (%s) not copied nor converted: %s", path, name, exc)
            return None
        meta = {k: v for k, v in s_in.metadata.items() if k.lower() not in _STALE_TAGS}
        if "title" not in meta and "name" in meta:  # MOV/MP4 give a track's title as "name"
            meta["title"] = meta.pop("name")
        s_out.metadata.update(meta)
        try:
            s_out.disposition = s_in.disposition  # default, forced
        except (AttributeError, TypeError, ValueError):
            pass
        log.info("%s: subtitle (%s) converted to %s: %s", path, name, target, refused)
        return cls(path, s_in, s_out, offset, end)

    def convert(self, packet) -> list:
        """The output packets for one source packet in the span: its cues, shifted to the
        span's start and cut at its end. A cue that does not decode or encode is counted and
        left out (report() warns), so bad input never fails the render."""
        import av

        tb = self.s_in.time_base
        try:
            cues = self.s_in.codec_context.decode2(packet)
        except (ValueError, av.error.FFmpegError) as exc:
            return self._fail(exc)
        if cues is None or len(cues) == 0:
            return []  # mov_text writes an empty sample to clear the screen: nothing to show
        start = (packet.pts - self.offset) * tb + cues.start_display_time * _MS
        shown = cues.end_display_time - cues.start_display_time
        # UINT32_MAX is "until the next cue", which a cue-by-cue conversion does not know
        if 0 < shown and cues.end_display_time != 0xFFFFFFFF:
            stop = start + shown * _MS
        elif packet.duration:
            stop = start + packet.duration * tb
        else:  # no end given: shown to the end of the span
            stop = (self.end - self.offset) * tb
        stop = min(stop, (self.end - self.offset) * tb)
        if stop <= start:
            return []
        # The encoder takes display times in ms from the cue's pts (and the first one must be
        # 0); the packet's timing is set here, in microseconds, and the muxer rescales it.
        cues.pts = round(start / _US)
        cues.start_display_time = 0
        cues.end_display_time = round((stop - start) / _MS)
        try:
            out = self.stream.codec_context.encode_subtitle(cues)
        except (ValueError, av.error.FFmpegError) as exc:
            return self._fail(exc)
        out.pts = out.dts = round(start / _US)
        out.duration = round((stop - start) / _US)
        out.time_base = _US
        out.stream = self.stream
        return [out]

    def _fail(self, exc: Exception) -> list:
        self.failed += 1
        self.first_error = self.first_error or exc
        return []

    def report(self) -> None:
        if self.failed:
            log.warning(
                "%s: %d subtitle cue(s) of stream #%d (%s) could not be converted and were "
                "left out of %s: %s",
                self.source, self.failed, self.s_in.index, self.s_in.codec_context.name,
                self.path, self.first_error,
            )  # fmt: skip


def _encoder_header(target: str, header: bytes | None) -> bytes:
    """The ASS header to open a `target` encoder with: the source decoder's, or FFmpeg's
    default (from a subrip decoder) where it has none or the encoder refuses it (mov_text will
    not open without one)."""
    import av

    def opens(candidate: bytes) -> bool:
        trial = av.CodecContext.create(target, "w")
        trial.time_base = _MS
        trial.subtitle_header = candidate
        try:
            trial.open()
        except (ValueError, av.error.FFmpegError):
            return False
        return True

    if header and opens(header):
        return header
    default = av.CodecContext.create("subrip", "r")
    default.open()
    return default.subtitle_header or b""


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
