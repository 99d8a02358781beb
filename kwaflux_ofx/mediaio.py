"""Media in and out: probe, decode frame ranges and encode video (PyAV) and image sequences (OIIO)."""

from __future__ import annotations

import dataclasses
import fractions
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kwaflux_ofx.errors import MediaError

log = logging.getLogger(__name__)

IMAGE_EXTS = {".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".cin"}
# A frame-numbered file: prefix, the frame number, then the image extension.
_FRAME_RE = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)(?P<suffix>\.[A-Za-z0-9]+)$")


@dataclasses.dataclass(frozen=True)
class CodecSpec:
    """How one `--codec` choice is written."""

    name: str
    kind: str  # "video" or "sequence"
    ext: str
    av_codec: str = ""
    pix_fmt_8: str = ""  # pixel format for 8-bit sources
    pix_fmt_hi: str = ""  # pixel format for sources above 8 bits
    options: tuple[tuple[str, str], ...] = ()
    oiio_format: str = ""  # sample type of image sequences
    min_size: tuple[int, int] = (1, 1)
    even_size: bool = False


CODECS: dict[str, CodecSpec] = {
    c.name: c
    for c in (
        CodecSpec("prores_422hq", "video", ".mov", "prores_ks", "yuv422p10le", "yuv422p10le",
                  (("profile", "3"), ("vendor", "apl0"))),
        CodecSpec("prores_4444", "video", ".mov", "prores_ks", "yuv444p10le", "yuv444p10le",
                  (("profile", "4"), ("vendor", "apl0"))),
        # DNxHR HQX is a 10-bit profile; the encoder refuses frames under 256x120.
        CodecSpec("dnxhr_hqx", "video", ".mov", "dnxhd", "yuv422p10le", "yuv422p10le",
                  (("profile", "dnxhr_hqx"),), min_size=(256, 120)),
        CodecSpec("h264", "video", ".mov", "libx264", "yuv420p", "yuv420p10le",
                  (("crf", "14"), ("preset", "medium")), even_size=True),
        CodecSpec("h265", "video", ".mov", "libx265", "yuv420p", "yuv420p10le",
                  (("crf", "16"), ("preset", "medium"), ("x265-params", "log-level=error")),
                  even_size=True),
        # The mov muxer has no FFV1 tag; Matroska carries it (and the timecode as a tag).
        CodecSpec("ffv1", "video", ".mkv", "ffv1", "yuv444p", "yuv444p16le",
                  (("level", "3"), ("slicecrc", "1"))),
        CodecSpec("exr", "sequence", ".exr", oiio_format="half"),
        CodecSpec("png", "sequence", ".png", oiio_format="uint16"),
        CodecSpec("tiff", "sequence", ".tif", oiio_format="uint16"),
    )
}


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


# -- probing -----------------------------------------------------------------------------------
@dataclasses.dataclass
class MediaInfo:
    """What conform needs to know about one source: geometry, timing and how to read it."""

    path: str  # a video file, or the first frame of an image sequence
    kind: str  # "video" | "sequence"
    width: int
    height: int
    channels: int
    rate: float
    frames: int
    start_tc: int | None  # start timecode in frames at `rate`, when the media carries one
    bits: int  # bits per sample of the source (8, 10, 12, 16, 32)
    pix_fmt: str = ""
    has_audio: bool = False
    color: dict = dataclasses.field(default_factory=dict)
    rate_known: bool = True  # image sequences often carry no rate: the timeline's is used
    tc_word: int | None = None  # SMPTE timecode of a sequence's first frame, as stored
    comment: str = ""  # container comment / ImageDescription (conform marks its outputs there)
    drop_frame: bool = False  # the start timecode is drop-frame (29.97/59.94 with ';')

    def adopt_rate(self, rate: float) -> None:
        """Take the timeline's rate for media that carries none (and count its timecode in it)."""
        if not self.rate_known:
            self.rate = float(rate)
            self.rate_known = True
            if self.tc_word is not None:
                self.start_tc = smpte_to_frames(self.tc_word, self.rate)
    # image sequences: directory, name parts and the frame numbers present, in order
    seq_dir: str = ""
    seq_prefix: str = ""
    seq_suffix: str = ""
    seq_padding: int = 0
    seq_numbers: tuple[int, ...] = ()

    @property
    def first_number(self) -> int:
        return self.seq_numbers[0] if self.seq_numbers else 0

    def frame_path(self, index: int) -> str:
        if not self.seq_suffix:  # a lone image without a frame number
            return os.path.join(self.seq_dir, self.seq_prefix)
        # Frame numbers are time: a gap stays a gap (a missing file), never shifts later frames.
        n = self.seq_numbers[0] + index
        return os.path.join(self.seq_dir, f"{self.seq_prefix}{n:0{self.seq_padding}d}{self.seq_suffix}")


def sequence_members(path: str | os.PathLike) -> tuple[str, str, str, int, list[int]] | None:
    """If `path` is one frame of a numbered image sequence: (dir, prefix, suffix, padding, numbers)."""
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTS:
        return None
    m = _FRAME_RE.match(p.name)
    if not m:
        return None
    prefix, num, suffix = m.group("prefix"), m.group("num"), m.group("suffix")
    padding = len(num)
    numbers = []
    try:
        names = os.listdir(p.parent)
    except OSError:
        return None
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix):
            mid = name[len(prefix) : len(name) - len(suffix)]
            if mid.isdigit() and (len(mid) == padding or (len(num) != padding and len(mid) > padding)):
                numbers.append(int(mid))
    if not numbers:
        return None
    return str(p.parent), prefix, suffix, padding, sorted(numbers)


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read geometry, rate, length and start timecode of a video file or an image sequence."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError("no such file", path)
    seq = sequence_members(path)
    if seq is not None or Path(path).suffix.lower() in IMAGE_EXTS:
        return _probe_sequence(path, seq)
    return _probe_video(path)


def _probe_video(path: str) -> MediaInfo:
    import av

    try:
        with av.open(path) as c:
            if not c.streams.video:
                raise MediaError("has no video stream", path)
            s = c.streams.video[0]
            rate = float(s.average_rate or s.guessed_rate or s.base_rate or 0)
            if rate <= 0:
                raise MediaError("has no frame rate", path)
            frames = int(s.frames or 0)
            if frames <= 0 and s.duration and s.time_base:
                frames = round(float(s.duration * s.time_base) * rate)
            if frames <= 0:
                frames = sum(1 for _ in c.demux(s) if _.size)
            tc = _meta_get(s.metadata, "timecode") or _meta_get(c.metadata, "timecode")
            for d in c.streams.data:
                tc = tc or _meta_get(d.metadata, "timecode")
            cc = s.codec_context
            if cc is None:  # e.g. an MP4 cut before its codec parameters
                raise MediaError("has a video stream with no codec (damaged or cut short?)", path)
            fmt = cc.format
            bits = max((comp.bits for comp in fmt.components), default=8) if fmt else 8
            alpha = fmt is not None and any(comp.is_alpha for comp in fmt.components)
            channels = 4 if alpha else 3
            color = {
                "color_range": cc.color_range,
                "colorspace": cc.colorspace,
                "color_primaries": cc.color_primaries,
                "color_trc": cc.color_trc,
            }
            start_tc = None
            drop_frame = False
            if tc:
                try:
                    start_tc = timecode_to_frames(tc, rate)
                    drop_frame = is_drop_frame(tc) and drop_per_minute(rate) > 0
                except ValueError:
                    log.warning("%s: ignoring unreadable timecode %r", path, tc)
            return MediaInfo(
                path=path, kind="video", width=cc.width, height=cc.height, channels=channels,
                rate=rate, frames=frames, start_tc=start_tc, bits=bits,
                pix_fmt=fmt.name if fmt else "", has_audio=bool(c.streams.audio), color=color,
                comment=_meta_get(c.metadata, "comment") or "",
                drop_frame=drop_frame,
            )
    except MediaError:
        raise
    except Exception as exc:  # PyAV raises many types; the user needs the file and the reason
        raise MediaError(f"cannot read video: {_first_line(exc)}", path) from exc


def _meta_get(meta, key: str) -> str | None:
    for k, v in (meta or {}).items():
        if k.lower() == key:
            return v
    return None


def _probe_sequence(path: str, seq) -> MediaInfo:
    import OpenImageIO as oiio

    if seq is None:
        # a lone image without a frame number: one frame, named as it is
        seq = (os.path.dirname(path), os.path.basename(path), "", 0, [])
        info_path = path
    else:
        d, prefix, suffix, pad, nums = seq
        info_path = os.path.join(d, f"{prefix}{nums[0]:0{pad}d}{suffix}")
    inp = oiio.ImageInput.open(info_path)
    if inp is None:
        raise MediaError(f"cannot read image: {oiio.geterror() or 'unknown format'}", info_path)
    try:
        spec = inp.spec()
        fps = spec.getattribute("FramesPerSecond")
        if isinstance(fps, (tuple, list)):  # a rational
            fps = fps[0] / fps[1] if len(fps) == 2 and fps[1] else 0
        rate = float(fps or 0)
        tc_attr = spec.getattribute("smpte:TimeCode")
        tc_word = int(tc_attr[0]) if tc_attr else None
        start_tc = smpte_to_frames(tc_word, rate or 24.0) if tc_word is not None else None
        bits = {"uint8": 8, "uint16": 16, "half": 16, "float": 32}.get(str(spec.format), 16)
        bits = int(spec.getattribute("oiio:BitsPerSample") or bits)
        info = MediaInfo(
            path=info_path, kind="sequence", width=spec.width, height=spec.height,
            channels=min(spec.nchannels, 4), rate=rate or 24.0,
            frames=(seq[4][-1] - seq[4][0] + 1) if seq[4] else 1,
            start_tc=start_tc, bits=bits, pix_fmt=str(spec.format), rate_known=bool(rate),
            tc_word=tc_word, comment=str(spec.getattribute("ImageDescription") or ""),
        )
    finally:
        inp.close()
    info.seq_dir, info.seq_prefix, info.seq_suffix, info.seq_padding = seq[:4]
    info.seq_numbers = tuple(seq[4]) or (0,)
    return info


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- decoding ----------------------------------------------------------------------------------
def frame_dtype(info: MediaInfo) -> np.dtype:
    """The numpy type frames of this source decode to: 8-bit stays uint8, deeper goes uint16,
    float image sequences stay float32."""
    if info.kind == "sequence" and info.pix_fmt in ("half", "float"):
        return np.dtype(np.float32)
    return np.dtype(np.uint8) if info.bits <= 8 else np.dtype(np.uint16)


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
                raise MediaError(f"frame is {size[0]}x{size[1]}, the sequence is "
                                 f"{info.width}x{info.height}", fp)
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
        raise MediaError(f"cannot decode video: {_first_line(exc)}", info.path) from None


def _decode_video(info: MediaInfo, start: int, stop: int, fmt: str):
    # Seek first; if the demuxer lands past `start` (a seek table that lies, an open GOP),
    # decode again from the top rather than lose frames.
    for seek in ((True, False) if start > 0 else (False,)):
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


# -- encoding ----------------------------------------------------------------------------------
# AVColorSpace tag -> the swscale matrix that produces it (BT.470BG and SMPTE 170M are BT.601).
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020",
               10: "BT2020"}

class VideoWriter:
    """Encode frames into one video file with rate, start timecode and colour tags kept."""

    def __init__(self, path: str, codec: CodecSpec, width: int, height: int, rate: float,
                 start_tc: int | None, high_bit: bool, color: dict | None = None,
                 alpha: bool = False, audio_from: tuple[str, float, float] | None = None,
                 comment: str | None = None, drop_frame: bool = False):
        import av

        if width < codec.min_size[0] or height < codec.min_size[1]:
            raise MediaError(
                f"{codec.name} needs frames of at least {codec.min_size[0]}x{codec.min_size[1]}, "
                f"not {width}x{height}", path)
        if codec.even_size and (width % 2 or height % 2):
            raise MediaError(f"{codec.name} needs an even width and height, not {width}x{height}",
                             path)
        self.path = path
        self.container = av.open(path, "w")
        fr = fractions.Fraction(rate).limit_denominator(1001 * 1000)
        self.stream = self.container.add_stream(codec.av_codec, rate=fr, options=dict(codec.options))
        self.stream.width, self.stream.height = width, height
        pix = codec.pix_fmt_hi if high_bit else codec.pix_fmt_8
        if alpha and codec.name == "prores_4444":
            pix = "yuva444p10le"
        self.stream.pix_fmt = pix
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
        """Copy the source's first audio stream for [t0, t1) seconds, packets untouched.

        Audio goes in before any video: it is small, and the muxer's interleaving queue then
        holds only audio while the video streams in.
        """
        import av

        with av.open(source) as src:
            if not src.streams.audio:
                return
            a_in = src.streams.audio[0]
            try:
                a_out = self.container.add_stream_from_template(a_in)
            except (ValueError, av.error.FFmpegError) as exc:
                log.warning("%s: audio (%s) not copied: %s", self.path, a_in.codec_context.name,
                            exc)
                return
            tb = a_in.time_base
            first = a_in.start_time or 0
            offset = first + int(t0 / tb)
            end = first + int(t1 / tb)
            if t0 > 0:
                src.seek(offset, stream=a_in, backward=True)
            for packet in src.demux(a_in):
                if packet.pts is None or packet.size == 0:
                    continue
                if packet.pts < offset:
                    continue
                if packet.pts >= end:
                    break
                packet.pts -= offset
                packet.dts = packet.pts if packet.dts is None else packet.dts - offset
                packet.stream = a_out
                self.container.mux(packet)

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
            frame = frame.reformat(format=self.stream.pix_fmt, dst_colorspace=self.matrix,
                                   dst_color_range="MPEG")
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


class SequenceWriter:
    """Write frames as numbered images (EXR half, 16-bit PNG/TIFF) into one folder."""

    def __init__(self, directory: str, stem: str, codec: CodecSpec, first_number: int,
                 rate: float, start_tc: int | None, padding: int = 7,
                 comment: str | None = None):
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
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"),
                       _rational(self.rate))
        if self.start_tc is not None and self.codec.name == "exr":
            spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"),
                           (frames_to_smpte(self.start_tc + self.frames, self.rate), 0))
        if self.codec.name == "exr":
            spec.attribute("compression", "zip")
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
