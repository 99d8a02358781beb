"""Encode frames into a video file (PyAV) or an image sequence (OIIO), atomically."""

from __future__ import annotations

import fractions
import logging
import os

import numpy as np

from kwaflux_ofx.errors import MediaError
from kwaflux_ofx.media.codecs import CodecSpec
from kwaflux_ofx.media.delivery import Delivery
from kwaflux_ofx.media.hdr import params_for
from kwaflux_ofx.media.sched import demote_new_realtime, snapshot
from kwaflux_ofx.media.streams import copy_streams
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
        delivery: Delivery | None = None,
        hdr: dict | None = None,
        times: tuple[float, ...] | None = None,
        time_base: fractions.Fraction | None = None,
    ):
        """`times`, given, are when each frame is shown (seconds from the first) and, last,
        where the last one ends: the frames are stamped with them in `time_base` (the source's,
        so its timestamps carry over exactly) instead of one per 1/`rate`."""
        import av

        delivery = delivery or Delivery()

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
        self.realtime_before = snapshot()  # see media/sched.py
        self.container = av.open(path, "w")
        fr = fractions.Fraction(rate).limit_denominator(1001 * 1000)
        options = delivery.video_options(codec, params_for(codec.av_codec, hdr))
        self.stream = self.container.add_stream(codec.av_codec, rate=fr, options=options)
        self.stream.width, self.stream.height = width, height
        self.ticks: list[int] | None = None
        if times is not None:
            tb = time_base or fractions.Fraction(1, 90000)
            self.ticks = [round(fractions.Fraction(t) / tb) for t in times]
            if any(b <= a for a, b in zip(self.ticks, self.ticks[1:], strict=False)):
                raise MediaError("frame times do not rise in the output's time base", path)
            self.stream.codec_context.time_base = tb
            self.stream.time_base = tb
        self.stream.pix_fmt = delivery.video_pix_fmt(codec, high_bit, alpha)
        if tuple(sample_aspect) != (1, 1):
            # Non-square pixels stay non-square: the same ratio on a uniformly scaled frame.
            self.stream.codec_context.sample_aspect_ratio = fractions.Fraction(*sample_aspect)
        self.matrix = None
        self.range = "MPEG"
        self._tag_colour(delivery.colour_tags(color or {}, codec))
        if start_tc is not None:
            tc = frames_to_timecode(start_tc, rate, drop_frame)
            self.stream.metadata["timecode"] = tc
            self.container.metadata["timecode"] = tc
        if comment:
            self.container.metadata["comment"] = comment
        self.in_fmt = None
        self.frames = 0
        if audio_from is not None:
            copy_streams(self.container, path, *audio_from, audio=delivery.audio)

    def _tag_colour(self, tags: dict) -> None:
        """Carry the colour tags (Delivery.colour_tags), and convert RGB to YUV with the matrix
        and range they name (swscale would otherwise use BT.601 limited whatever they say)."""
        if self.stream.pix_fmt.startswith(("rgb", "bgr", "gbr")):
            return
        cc = self.stream.codec_context
        matrix = _SWS_MATRIX.get(tags.get("colorspace") or 2)
        try:
            if matrix is not None:
                self.matrix = matrix
                self.range = "JPEG" if tags["color_range"] == 2 else "MPEG"
                cc.colorspace = tags["colorspace"]
                cc.color_range = tags["color_range"]  # what the conversion in write() produces
            for key in ("color_primaries", "color_trc"):
                if key in tags:
                    setattr(cc, key, tags[key])
        except (AttributeError, TypeError, ValueError) as exc:
            log.debug("cannot tag colour on %s: %s", self.path, exc)

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
                format=self.stream.pix_fmt, dst_colorspace=self.matrix, dst_color_range=self.range
            )
        if self.ticks is None:
            frame.pts = self.frames
        else:
            if self.frames + 1 >= len(self.ticks):
                raise MediaError(f"more frames than the {len(self.ticks) - 1} timed", self.path)
            frame.pts = self.ticks[self.frames]
            # how long it is shown: the muxer's stts (MP4/MOV) and a held last frame need it
            frame.duration = self.ticks[self.frames + 1] - frame.pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        if self.frames == 0:  # the encoder opens, and starts its threads, on the first frame
            demote_new_realtime(self.realtime_before, self.path)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        demote_new_realtime(self.realtime_before, self.path)

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception as exc:  # noqa: BLE001 - already broken; the caller removes the temp file
            log.debug("closing %s after an error: %s", self.path, exc)


class SequenceWriter:
    """Write frames as numbered images (EXR half or float, 10-bit DPX, 16-bit PNG/TIFF) into one
    folder."""

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
        delivery: Delivery | None = None,
    ):
        self.attributes = (delivery or Delivery()).oiio_attributes(codec)
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
        for key, value in self.attributes:
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
