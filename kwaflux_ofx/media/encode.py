"""Encode frames into a video file (PyAV) or an image sequence (OIIO), atomically."""

from __future__ import annotations

import fractions
import logging
import os

import numpy as np

from kwaflux_ofx.errors import MediaError
from kwaflux_ofx.media.codecs import CodecSpec
from kwaflux_ofx.media.timecode import frames_to_smpte, frames_to_timecode

log = logging.getLogger(__name__)


# -- encoding ----------------------------------------------------------------------------------
# AVColorSpace tag -> the swscale matrix that produces it (BT.470BG and SMPTE 170M are BT.601).
_SWS_MATRIX = {
    1: "ITU709",
    4: "FCC",
    5: "ITU601",
    6: "ITU601",
    7: "SMPTE240M",
    9: "BT2020",
    10: "BT2020",
}


class VideoWriter:
    """Encode frames into one video file with rate, start timecode and colour tags kept."""

    def __init__(
        self,
        path: str,
        codec: CodecSpec,
        width: int,
        height: int,
        rate: float,
        start_tc: int | None,
        high_bit: bool,
        color: dict | None = None,
        alpha: bool = False,
        audio_from: tuple[str, float, float] | None = None,
        comment: str | None = None,
        drop_frame: bool = False,
        sample_aspect: tuple[int, int] = (1, 1),
    ):
        import av

        if width < codec.min_size[0] or height < codec.min_size[1]:
            raise MediaError(
                f"{codec.name} needs frames of at least {codec.min_size[0]}x{codec.min_size[1]}, "
                f"not {width}x{height}",
                path,
            )
        if codec.even_size and (width % 2 or height % 2):
            raise MediaError(
                f"{codec.name} needs an even width and height, not {width}x{height}", path
            )
        self.path = path
        self.container = av.open(path, "w")
        fr = fractions.Fraction(rate).limit_denominator(1001 * 1000)
        self.stream = self.container.add_stream(
            codec.av_codec, rate=fr, options=dict(codec.options)
        )
        self.stream.width, self.stream.height = width, height
        pix = codec.pix_fmt_hi if high_bit else codec.pix_fmt_8
        if alpha and codec.alpha and codec.pix_fmt_alpha:
            pix = codec.pix_fmt_alpha
        self.stream.pix_fmt = pix
        if tuple(sample_aspect) != (1, 1):
            # Non-square pixels stay non-square: the same ratio on a uniformly scaled frame.
            self.stream.codec_context.sample_aspect_ratio = fractions.Fraction(*sample_aspect)
        self.matrix = None
        self._tag_colour(color or {})
        if start_tc is not None:
            tc = frames_to_timecode(start_tc, rate, drop_frame)
            self.stream.metadata["timecode"] = tc
            self.container.metadata["timecode"] = tc
        if comment:
            self.container.metadata["comment"] = comment
        self.in_fmt = None
        self.frames = 0
        if audio_from is not None:
            self._copy_audio(*audio_from)

    def _tag_colour(self, color: dict) -> None:
        """Carry the source's colour tags, and convert RGB to YUV with the matrix the tags name
        (swscale would otherwise use BT.601 whatever the tag says). Output is limited range."""
        if self.stream.pix_fmt.startswith(("rgb", "bgr", "gbr")):
            return
        cc = self.stream.codec_context
        matrix = _SWS_MATRIX.get(color.get("colorspace") or 2)
        try:
            if matrix is not None:
                self.matrix = matrix
                cc.colorspace = color["colorspace"]
                cc.color_range = 1  # MPEG/limited: what the conversion below produces
            for key in ("color_primaries", "color_trc"):
                if color.get(key) not in (None, 0, 2):  # 2 = unspecified
                    setattr(cc, key, color[key])
        except (AttributeError, TypeError, ValueError) as exc:
            log.debug("cannot tag colour on %s: %s", self.path, exc)

    def _copy_audio(self, source: str, t0: float, t1: float) -> None:
        copy_audio(self.container, self.path, source, t0, t1)

    def write(self, array: np.ndarray) -> None:
        import av

        if self.in_fmt is None:
            c = array.shape[2]
            if array.dtype == np.uint8:
                self.in_fmt = "rgb24" if c == 3 else "rgba"
            else:
                self.in_fmt = "rgb48le" if c == 3 else "rgba64le"
        if array.dtype not in (np.uint8, np.uint16):
            array = (np.clip(array, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=self.in_fmt)
        if self.matrix is not None:
            frame = frame.reformat(
                format=self.stream.pix_fmt, dst_colorspace=self.matrix, dst_color_range="MPEG"
            )
        frame.pts = self.frames
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception as exc:  # noqa: BLE001 - already broken; the caller removes the temp file
            log.debug("closing %s after an error: %s", self.path, exc)


def copy_audio(container, path: str, source: str, t0: float, t1: float) -> None:
    """Copy every audio stream of the source for [t0, t1) seconds into `container` (being
    written to `path`), packets untouched.

    Audio goes in before any video: it is small, and the muxer's interleaving queue then
    holds only audio while the video streams in.
    """
    import av

    with av.open(source) as src:
        spans = {}  # input stream index -> (output stream, first pts kept, end pts)
        for a_in in src.streams.audio:
            try:
                a_out = container.add_stream_from_template(a_in)
            except (ValueError, av.error.FFmpegError) as exc:
                name = a_in.codec_context.name
                log.warning("%s: audio (%s) not copied: %s", path, name, exc)
                continue
            tb = a_in.time_base
            first = a_in.start_time or 0
            spans[a_in.index] = (a_out, first + int(t0 / tb), first + int(t1 / tb))
        if not spans:
            return
        streams = [src.streams[i] for i in spans]
        if t0 > 0:
            src.seek(spans[streams[0].index][1], stream=streams[0], backward=True)
        past_end: set[int] = set()
        for packet in src.demux(streams):
            a_out, offset, end = spans[packet.stream.index]
            if packet.pts is not None and packet.pts >= end:
                past_end.add(packet.stream.index)
                if len(past_end) == len(spans):
                    break  # every stream is past the span: the rest of the file is not read
            if packet.pts is None or packet.size == 0 or not offset <= packet.pts < end:
                continue
            packet.pts -= offset
            packet.dts = packet.pts if packet.dts is None else packet.dts - offset
            packet.stream = a_out
            container.mux(packet)


class SequenceWriter:
    """Write frames as numbered images (EXR half, 16-bit PNG/TIFF) into one folder."""

    def __init__(
        self,
        directory: str,
        stem: str,
        codec: CodecSpec,
        first_number: int,
        rate: float,
        start_tc: int | None,
        padding: int = 7,
        comment: str | None = None,
    ):
        self.directory = directory
        self.comment = comment
        self.stem = stem
        self.codec = codec
        self.number = first_number
        self.rate = rate
        self.start_tc = start_tc
        self.padding = padding
        self.frames = 0
        os.makedirs(directory, exist_ok=True)

    def name_for(self, number: int) -> str:
        return f"{self.stem}.{number:0{self.padding}d}{self.codec.ext}"

    def write(self, array: np.ndarray) -> None:
        import OpenImageIO as oiio

        h, w, c = array.shape
        spec = oiio.ImageSpec(w, h, c, self.codec.oiio_format)
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), _rational(self.rate))
        if self.start_tc is not None and self.codec.timecode_attribute:
            spec.attribute(
                "smpte:TimeCode",
                oiio.TypeDesc("timecode"),
                (frames_to_smpte(self.start_tc + self.frames, self.rate), 0),
            )
        for key, value in self.codec.oiio_attributes:
            spec.attribute(key, value)
        if self.comment:
            spec.attribute("ImageDescription", self.comment)
        path = os.path.join(self.directory, self.name_for(self.number))
        out = oiio.ImageOutput.create(path)
        if out is None or not out.open(path, spec):
            raise MediaError(f"cannot write image: {oiio.geterror()}", path)
        data = array
        if array.dtype == np.uint8:
            data = array.astype(np.float32) / 255.0
        ok = out.write_image(np.ascontiguousarray(data))
        out.close()
        if not ok:
            raise MediaError(f"cannot write image: {oiio.geterror()}", path)
        self.number += 1
        self.frames += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _rational(rate: float) -> tuple[int, int]:
    f = fractions.Fraction(rate).limit_denominator(1001 * 1000)
    return f.numerator, f.denominator
