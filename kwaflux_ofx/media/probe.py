"""What a piece of media is: a video file or an image sequence, its size, rate, depth and timecode."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import numpy as np

from kwaflux_ofx.errors import MediaError, first_line
from kwaflux_ofx.media.damage import cut_short
from kwaflux_ofx.media.hdr import read_hdr
from kwaflux_ofx.media.timecode import (
    drop_per_minute,
    is_drop_frame,
    smpte_to_frames,
    timecode_to_frames,
)
from kwaflux_ofx.media.timing import StreamTiming, Timing, VfrMode, scan

log = logging.getLogger(__name__)


# A file bigger than this is not read whole to be probed: its header gives the frame count.
FULL_SCAN_BYTES = 2 << 30

IMAGE_EXTS = {".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".cin"}


# A frame-numbered file: prefix, the frame number, then the image extension.
_FRAME_RE = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)(?P<suffix>\.[A-Za-z0-9]+)$")


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
    # video only: how frames are numbered (media/timing.py), and what else the output keeps
    timing: StreamTiming | None = None
    vfr_mode: VfrMode = VfrMode.CFR
    interlaced: bool = False
    sample_aspect: tuple[int, int] = (1, 1)
    container: str = ""
    hdr: dict | None = None  # HDR10 mastering display / content light (media/hdr.py)
    # a file shorter than its container says: (bytes present, bytes announced); the frames the
    # file announces where more than can be read (cut short, or a demuxer that breaks off)
    cut_short: tuple[int, int] | None = None
    declared_frames: int | None = None

    def set_vfr_mode(self, mode: VfrMode) -> None:
        """Number a variable-rate source's frames by slot of the constant rate, or one by one."""
        self.vfr_mode = mode
        if self.timing is not None and self.timing.vfr:
            self.frames = self.timing.slots if mode is VfrMode.CFR else self.timing.packets

    @property
    def keeps_times(self) -> bool:
        """Frames are written at the source's own times (--vfr keep on a variable-rate source),
        not one per slot of the base rate."""
        t = self.timing
        return t is not None and t.vfr and self.vfr_mode is VfrMode.KEEP

    def seconds(self, index: int) -> float:
        """When frame `index` is shown, in seconds from the clip's first frame; `index` equal to
        the frame count: where the last frame ends (it lasts one slot of the base rate)."""
        times = self.timing.times if self.keeps_times else ()
        if not times:
            return index / self.rate
        # A count past the times (a repeated or missing timestamp) goes on at the base rate.
        last = min(index, len(times) - 1)
        return times[last] + (index - last) / self.rate

    @property
    def counted(self) -> bool:
        """Frames are numbered by counting decoded frames (no seeking to a timestamp)."""
        t = self.timing
        return t is not None and (
            t.timing is Timing.ORDER or (t.vfr and self.vfr_mode is VfrMode.KEEP)
        )

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
        return os.path.join(
            self.seq_dir, f"{self.seq_prefix}{n:0{self.seq_padding}d}{self.seq_suffix}"
        )


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
            if mid.isdigit() and (
                len(mid) == padding or (len(num) != padding and len(mid) > padding)
            ):
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

    cut = cut_short(path)
    try:
        with av.open(path) as c:
            if not c.streams.video:
                raise MediaError("has no video stream", path)
            s = c.streams.video[0]
            rate = float(s.average_rate or s.guessed_rate or s.base_rate or 0)
            if rate <= 0:
                raise MediaError("has no frame rate", path)
            if s.guessed_rate and s.average_rate and s.guessed_rate > s.average_rate * 1.01:
                rate = float(s.guessed_rate)  # frames dropped (VFR): the base rate is the grid
            big = os.path.getsize(path) > FULL_SCAN_BYTES
            timing = scan(c, s, rate, limit=3000 if big else None)
            frames = timing.slots
            if frames <= 0:
                raise MediaError("has a video stream with no frames", path)
            interlaced, hdr = _first_frame(path)
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
            sar = s.sample_aspect_ratio or cc.sample_aspect_ratio
            sar = (sar.numerator, sar.denominator) if sar and sar.numerator else (1, 1)
            start_tc = None
            drop_frame = False
            if tc:
                try:
                    start_tc = timecode_to_frames(tc, rate)
                    drop_frame = is_drop_frame(tc) and drop_per_minute(rate) > 0
                except ValueError:
                    log.warning("%s: ignoring unreadable timecode %r", path, tc)
            return MediaInfo(
                path=path,
                kind="video",
                width=cc.width,
                height=cc.height,
                channels=channels,
                rate=rate,
                frames=frames,
                start_tc=start_tc,
                bits=bits,
                pix_fmt=fmt.name if fmt else "",
                has_audio=bool(c.streams.audio),
                color=color,
                comment=_meta_get(c.metadata, "comment") or "",
                drop_frame=drop_frame,
                timing=timing,
                interlaced=interlaced,
                sample_aspect=sar,
                container=c.format.name,
                hdr=hdr,
                cut_short=cut,
                declared_frames=None if big else _declared_frames(c, s, rate, timing, cut),
            )
    except MediaError:
        raise
    except Exception as exc:  # PyAV raises many types; the user needs the file and the reason
        why = first_line(exc)
        if cut:  # FFmpeg's words repeat the path and an errno: the cut is what matters
            why = re.sub(r"^\[Errno -?\d+\]\s*", "", why.split(": '")[0])
            why = f"the file is cut short ({cut[0]} of {cut[1]} bytes): {why}"
        raise MediaError(f"cannot read video: {why}", path) from exc


def _declared_frames(c, s, rate: float, timing: StreamTiming, cut) -> int | None:
    """How many frames the file announces, where that is more than can be read: a Matroska
    track's own duration (which audio does not lengthen) for any file; for a file cut short,
    also the AVI/MP4 header's count or the container's duration."""
    present = timing.slots
    tag = _meta_get(s.metadata, "duration")  # "HH:MM:SS.nnnnnnnnn": where the track ends
    if tag and not timing.vfr:
        try:
            h, m, sec = tag.split(":")
            end = int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            end = 0.0
        announced = round((end - float(timing.first_pts * timing.time_base)) * rate)
        if announced > present + (0 if cut else 1):  # a frame's rounding is not damage
            return announced
    if not cut:
        return None
    if s.frames and s.frames > present:  # AVI and MP4/MOV headers count them
        return int(s.frames)
    seconds = float(s.duration * s.time_base) if s.duration and s.time_base else 0.0
    seconds = seconds or (c.duration or 0) / 1_000_000  # Matroska: the segment's duration
    announced = round(seconds * rate)
    return announced if announced > present else None


def _first_frame(path: str) -> tuple[bool, dict | None]:
    """Whether the first frame says it is interlaced, and its HDR metadata (the stream header
    often says neither)."""
    import av

    with av.open(path) as c:
        for frame in c.decode(video=0):
            return bool(frame.interlaced_frame), read_hdr(frame)
    return False, None


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
            path=info_path,
            kind="sequence",
            width=spec.width,
            height=spec.height,
            channels=min(spec.nchannels, 4),
            rate=rate or 24.0,
            frames=(seq[4][-1] - seq[4][0] + 1) if seq[4] else 1,
            start_tc=start_tc,
            bits=bits,
            pix_fmt=str(spec.format),
            rate_known=bool(rate),
            tc_word=tc_word,
            comment=str(spec.getattribute("ImageDescription") or ""),
        )
    finally:
        inp.close()
    info.seq_dir, info.seq_prefix, info.seq_suffix, info.seq_padding = seq[:4]
    info.seq_numbers = tuple(seq[4]) or (0,)
    return info


# -- decoding ----------------------------------------------------------------------------------
def frame_dtype(info: MediaInfo) -> np.dtype:
    """The numpy type frames of this source decode to: 8-bit stays uint8, deeper goes uint16,
    float image sequences stay float32."""
    if info.kind == "sequence" and info.pix_fmt in ("half", "float"):
        return np.dtype(np.float32)
    return np.dtype(np.uint8) if info.bits <= 8 else np.dtype(np.uint16)
