"""Stand-in media and a tiny model for conform tests: every frame carries its own index as pixels."""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
# The timelines the suite depends on: small ones written for it, in the formats NLEs export.
TIMELINES = ROOT / "tests" / "data" / "timelines"
# The extra set: real exports from other tools, beside the project (tests marked shared_timelines).
SHARED_TIMELINES = ROOT.parent / "shared" / "timelines"
if not SHARED_TIMELINES.is_dir():  # CI may check out shared/ inside the project
    SHARED_TIMELINES = ROOT / "shared" / "timelines"

W, H = 64, 36
BITS = 16  # frame index bits, as a 4x4 grid of 16x9 blocks
HIGH, LOW = 200, 40


def index_frame(n: int, w: int = W, h: int = H, dtype=np.uint8) -> np.ndarray:
    """A frame whose 4x4 blocks spell `n` in binary (bright = 1): survives lossy codecs."""
    bw, bh = w // 4, h // 4
    img = np.full((h, w, 3), LOW, np.uint8)
    for bit in range(BITS):
        if (n >> bit) & 1:
            r, c = divmod(bit, 4)
            img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = HIGH
    # a colour cue so channel order mistakes show
    img[:, :, 2] = img[:, :, 2] // 2
    if dtype == np.uint16:
        return img.astype(np.uint16) * 257
    if dtype == np.float32:
        return img.astype(np.float32) / 255.0
    return img


def read_index(frame: np.ndarray) -> int:
    """Decode the index written by index_frame from a frame of any size and dtype."""
    f = frame[:, :, 0].astype(np.float64)
    if frame.dtype == np.uint16:
        f /= 257.0
    elif frame.dtype.kind == "f":
        f *= 255.0
    h, w = f.shape
    bw, bh = w // 4, h // 4
    n = 0
    for bit in range(BITS):
        r, c = divmod(bit, 4)
        block = f[
            r * bh + bh // 4 : (r + 1) * bh - bh // 4, c * bw + bw // 4 : (c + 1) * bw - bw // 4
        ]
        if block.mean() > (HIGH + LOW) / 2:
            n |= 1 << bit
    return n


def make_video(
    path: str | os.PathLike,
    frames: int,
    rate: float = 24.0,
    start_tc: str | None = None,
    codec: str = "mjpeg",
    first_index: int = 0,
    size: tuple[int, int] = (W, H),
    audio: bool = False,
    color: bool = False,
    frame_fn=None,
) -> Path:
    """A stand-in clip: frame k shows index first_index + k; timecode as given."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if codec == "auto":
        codec = {".mxf": "mpeg2video", ".mkv": "ffv1", ".mp4": "libx264"}.get(
            path.suffix.lower(), "mjpeg"
        )
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(rate).limit_denominator(1001 * 1000))
        s.width, s.height = w, h
        s.pix_fmt = {
            "mjpeg": "yuvj444p",
            "libx264": "yuv420p",
            "ffv1": "yuv444p",
            "prores_ks": "yuv422p10le",
            "mpeg2video": "yuv422p",
        }[codec]
        if codec == "mjpeg":
            s.codec_context.qmin = s.codec_context.qmax = 2
        if codec == "mpeg2video":  # intra-only, high quality, as MXF masters are
            s.codec_context.gop_size = 1
            s.codec_context.qmin = s.codec_context.qmax = 2
        if codec == "libx264":
            s.options = {"g": "12", "crf": "10"}
        if start_tc:
            s.metadata["timecode"] = start_tc
        if color:  # BT.709 tags, as cameras and NLEs write them
            cc = s.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace = 1, 1, 1
        a = c.add_stream("pcm_s16le", rate=48000, layout="mono") if audio else None
        if a is not None:
            # one 1 kHz tone per second, so a copied span has a known length
            n = int(round(frames / rate * 48000))
            t = np.arange(n) / 48000.0
            pcm = (np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16)[None, :]
            af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            af.sample_rate = 48000
            af.pts = 0
            for p in a.encode(af):
                c.mux(p)
            for p in a.encode():
                c.mux(p)
        for k in range(frames):
            img = frame_fn(k) if frame_fn else index_frame(first_index + k, w, h)
            fmt = "rgb48le" if img.dtype == np.uint16 else "rgb24"
            frame = av.VideoFrame.from_ndarray(img, format=fmt)
            frame.pts = k
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_sequence(
    directory: str | os.PathLike,
    prefix: str,
    first_number: int,
    frames: int,
    ext: str = ".exr",
    padding: int = 4,
    tc_frames: int | None = None,
    rate: float = 24.0,
) -> list[Path]:
    """A numbered image sequence; frame k shows index k; EXR frames carry a SMPTE timecode."""
    import OpenImageIO as oiio

    from kwaflux_ofx.media.timecode import frames_to_smpte

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(frames):
        p = directory / f"{prefix}{first_number + k:0{padding}d}{ext}"
        fmt = "half" if ext == ".exr" else "uint16"
        spec = oiio.ImageSpec(W, H, 3, fmt)
        if tc_frames is not None and ext == ".exr":
            spec.attribute(
                "smpte:TimeCode",
                oiio.TypeDesc("timecode"),
                (frames_to_smpte(tc_frames + k, rate), 0),
            )
        o = oiio.ImageOutput.create(str(p))
        o.open(str(p), spec)
        o.write_image(index_frame(k, dtype=np.float32))
        o.close()
        out.append(p)
    return out


def make_nearest_x2(path: str | os.PathLike) -> Path:
    """A real ONNX SR model: nearest-neighbour x2 (1x1 conv to 12 channels, DepthToSpace)."""
    from onnx import helper, numpy_helper

    from tests.support.onnx_models import save_model

    weight = np.zeros((12, 3, 1, 1), np.float32)
    for c in range(3):
        weight[c * 4 : c * 4 + 4, c] = 1.0  # DCR... CRD mode: channel c -> out channels 4c..4c+3
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["y"], kernel_shape=[1, 1]),
        helper.make_node("DepthToSpace", ["y"], ["output"], blocksize=2, mode="CRD"),
    ]
    meta = {
        "kind": "sr",
        "scale": "2",
        "channels": "3",
        "range": "0-1",
        "noise_input": "",
        "receptive_field": "1",
        "name": "test-nearest-x2",
        "description": "test fixture",
        "license": "Apache-2.0",
        "training_data": "none",
    }
    weights = [numpy_helper.from_array(weight, "w")]
    return save_model(Path(path), nodes, weights, meta=meta, out_shape=("N", 3, "H2", "W2"))


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_checksums(root: str | os.PathLike) -> dict[str, str]:
    root = Path(root)
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def decode_indices(path: str | os.PathLike) -> tuple[list[int], tuple[int, int], str | None]:
    """(frame indices, (width, height), timecode) of a conformed video output."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tc = (
            s.metadata.get("timecode")
            or s.metadata.get("TIMECODE")
            or c.metadata.get("timecode")
            or c.metadata.get("TIMECODE")
        )
        idx = [read_index(f.to_ndarray(format="rgb24")) for f in c.decode(s)]
        return idx, (s.codec_context.width, s.codec_context.height), tc


def stand_in_media(
    timeline_path: str | os.PathLike,
    src_dir: str | os.PathLike,
    rate: float | None = None,
    margin: int = 30,
    codec: str = "auto",
    exr_frames_max: int = 400,
) -> dict[str, dict]:
    """Generate media for every clip of a real timeline: same names, rates, and timecodes and
    lengths that cover what the clips use (or exactly the exported available range).

    Returns {file name: {"path", "rate", "tc", "frames"}}; frame k of a file shows index k.
    """
    import opentimelineio as otio

    from kwaflux_ofx.conform.locate import base_name, reference_path
    from kwaflux_ofx.conform.plan import same_rate
    from kwaflux_ofx.conform.timeline import clip_use, read_timeline, video_clips
    from kwaflux_ofx.media.probe import IMAGE_EXTS
    from kwaflux_ofx.media.timecode import frames_to_timecode

    tl = read_timeline(timeline_path, rate=rate)
    wanted: dict[str, dict] = {}
    for i, clip in enumerate(video_clips(tl)):
        ref = clip.media_reference
        if isinstance(ref, otio.schema.GeneratorReference) or not clip.enabled:
            continue
        use = clip_use(clip, i)
        if use is None:
            continue
        path = reference_path(ref)
        if path:
            name = base_name(path)
        else:
            import re

            name = re.sub(r"\s*\(.*\)\s*$", "", clip.name).strip() or clip.name
            if not Path(name).suffix:
                name += ".mov"
        avail = getattr(ref, "available_range", None)
        if isinstance(ref, otio.schema.ImageSequenceReference):
            avail = None  # counted in frame numbers, not timecode: cover the clip's range
        entry = wanted.setdefault(name, {"rate": use.rate, "lo": None, "hi": None, "avail": None})
        if avail is not None and avail.duration.value > 1:
            entry["avail"] = True
            entry["rate"] = avail.start_time.rate
        k = 1.0 if same_rate(use.rate, entry["rate"]) else entry["rate"] / use.rate
        lo, hi = use.start * k - margin, use.end * k + margin
        if avail is not None and avail.duration.value > 1:
            # Cover the exported available range too: it is what the NLE saw on disk.
            lo = min(lo, avail.start_time.value)
            hi = max(hi, avail.end_time_exclusive().value)
        entry["lo"] = lo if entry["lo"] is None else min(entry["lo"], lo)
        entry["hi"] = hi if entry["hi"] is None else max(entry["hi"], hi)
    out = {}
    src_dir = Path(src_dir)
    for name, e in wanted.items():
        r = e["rate"]
        start = max(0, int(e["lo"]))
        frames = int(e["hi"] + 0.999) - start
        if Path(name).suffix.lower() in IMAGE_EXTS:
            import re

            m = re.match(r"^(.*?)(\d*)(\.[A-Za-z]+)$", name)
            prefix, num, ext = m.group(1), m.group(2), m.group(3)
            frames = min(frames, exr_frames_max)
            first = int(num) if num else 1
            make_sequence(
                src_dir,
                prefix,
                first,
                frames,
                ext=ext,
                padding=len(num) or 4,
                tc_frames=start,
                rate=r,
            )
            path = src_dir / name
        else:
            path = make_video(
                src_dir / name, frames, rate=r, start_tc=frames_to_timecode(start, r), codec=codec
            )
        out[name] = {"path": str(path), "rate": r, "tc": start, "frames": frames}
    return out


def encode_frames(
    frames: list[np.ndarray], path, codec: str, options: dict, pix: str, rate: int = 25
) -> list[np.ndarray]:
    """Encode RGB frames with `codec` (PyAV options, pixel format) into `path` and return them
    as kwaflux decodes them: the damage a codec does, to measure."""
    import av

    from kwaflux_ofx.media.decode import read_frames
    from kwaflux_ofx.media.probe import probe

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, options=options)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    info = probe(str(path))
    return [f[..., :3] for _, f in read_frames(info, 0, info.frames)]
