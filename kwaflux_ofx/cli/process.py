"""`kwaflux upscale` and `kwaflux preview`: a still, a clip or a batch of clips through the engine."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from kwaflux_ofx import settings
from kwaflux_ofx.cli import clips, options
from kwaflux_ofx.errors import KwafluxError, MediaError, checked

log = logging.getLogger(__name__)

# What each still format can hold: a float result goes to 16-bit where the format has no float.
_FORMAT_DEPTHS = {
    ".png": (np.uint8, np.uint16),
    ".jpg": (np.uint8,),
    ".jpeg": (np.uint8,),
    ".dpx": (np.uint8, np.uint16),
    ".tif": (np.uint8, np.uint16, np.float16, np.float32),
    ".tiff": (np.uint8, np.uint16, np.float16, np.float32),
    ".exr": (np.float16, np.float32),
}


UPSCALE_EXAMPLES = """examples:
  kwaflux upscale clip.avi clip_x2.mov --scale 2
  kwaflux upscale clip.mp4 part.mov --start 00:00:10:00 --end 00:00:20:00
  kwaflux upscale "shoot/*.mp4" upscaled/ --codec h264
  kwaflux upscale shot.####.exr shot_x2 --codec exr --compression piz
  kwaflux upscale clip.mov clip_x2.mxf --codec dnxhr_hqx
  kwaflux upscale clip.mp4 clip_x2.mp4 --codec h265 --crf 18 --preset slow -e x265-params=keyint=48
  kwaflux upscale photo.png photo_x2.png --denoise 0.3
"""

PREVIEW_EXAMPLES = """examples:
  kwaflux preview clip.mov check.png --at 01:00:12:05
  kwaflux preview clip.mov check.png --frame 240 --denoise 0.5
"""


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    options.add_scale(
        p, None, f"upscaling factor (default {settings.DEFAULT_SCALE}, or the --model's own scale)"
    )
    options.add_denoise(
        p,
        settings.DENOISE_AUTO,
        "denoise strength before upscaling (0 = off, exact pass-through; auto = measured)",
    )
    options.add_temporal_radius(p)  # videos and sequences; a still has no neighbours
    p.add_argument("--model", default=None, metavar="NAME|PATH", help="super-resolution model")
    options.add_look(p)
    p.add_argument("--denoise-model", default=None, metavar="NAME|PATH", help="denoise model")
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="N",
        help="tile size in pixels (default: from memory)",
    )
    options.add_device(p)
    options.add_colour_space(p)


def register(sub) -> None:
    p = sub.add_parser(
        "upscale",
        help="denoise and/or upscale an image, a clip or a folder of clips",
        description="Denoise and/or upscale an image (PNG, TIFF, EXR, DPX...), keeping its bit "
        "depth; a video (any container PyAV reads) into a video; an image sequence "
        "(shot.####.exr); a folder or glob of clips into an output folder.",
        epilog=UPSCALE_EXAMPLES,
    )
    p.add_argument("input", type=Path, help="image, video, sequence pattern, folder or glob")
    p.add_argument("output", type=Path, help="file, or folder for a batch or a sequence")
    _add_engine_options(p)
    clips.add_clip_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser(
        "preview",
        help="write a before/after image to judge a setting",
        description="Left half: the source scaled with Lanczos; right half: processed; at 100% pixels.",
        epilog=PREVIEW_EXAMPLES,
    )
    p.add_argument("input", type=Path, help="an image or a video file")
    p.add_argument("output", type=Path)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--frame", type=int, default=0, help="frame number for a video (from 0)")
    where.add_argument("--at", default=None, metavar="TIMECODE", help="source timecode of a video")
    _add_engine_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_preview)


def _engine(args):
    from kwaflux_ofx import Engine

    return Engine(device=args.device, tile=args.tile)


def _scale(args, engine) -> int:
    if args.scale is not None:
        return args.scale
    return engine.model_spec(args.model).scale if args.model else settings.DEFAULT_SCALE


def _settings(args, engine, pixels: np.ndarray, label: str, path: Path, color=None) -> dict:
    from kwaflux_ofx.media import colour

    chosen = colour.choose(
        args.colour_space, str(path), color=color, float_pixels=pixels.dtype.kind == "f"
    )
    if chosen.warning:
        log.warning("%s", chosen.warning)
    if not args.quiet:
        print(f"{label}: colour space {chosen.space.value} ({chosen.why})")
    denoise = checked(settings.check_denoise_or_auto, args.denoise, "--denoise")
    if denoise == settings.DENOISE_AUTO:
        est = engine.auto_strength([pixels], denoise_model=args.denoise_model, colour=chosen.space)
        denoise = est.strength
        if not args.quiet:
            print(f"{label}: {est.describe()}")
    scale = _scale(args, engine)
    return dict(
        scale=scale,
        denoise=denoise,
        sr_model=options.sr_model(args, scale),
        denoise_model=args.denoise_model,
        colour=chosen.space,
    )


def _check_output(args) -> None:
    if args.output.resolve() == args.input.resolve():
        raise KwafluxError("output would overwrite the input", args.output)
    if args.output.exists() and not args.overwrite:
        raise KwafluxError("exists already (pass --overwrite to replace it)", args.output)
    if not args.output.parent.is_dir():
        raise KwafluxError("output folder does not exist", args.output.parent)


def _progress(args, label: str):
    from tqdm import tqdm

    bar = tqdm(total=0, desc=label, unit="tile", disable=args.quiet or None, leave=False)

    def on_tile(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, on_tile


def _storable(pixels: np.ndarray, path: Path) -> np.ndarray:
    from kwaflux_ofx.engine.engine import from_float, to_float

    depths = _FORMAT_DEPTHS.get(path.suffix.lower())
    if depths is None or pixels.dtype.type in depths:
        return pixels
    target = np.uint16 if np.uint16 in depths else depths[0]
    return from_float(to_float(pixels), np.dtype(target))


def _load_input(path: Path, frame: int = 0, at: str | None = None) -> tuple[np.ndarray, dict]:
    from kwaflux_ofx.media.probe import probe
    from kwaflux_ofx.media.stills import check_channels, read_image

    if path.suffix.lower() in clips.VIDEO_SUFFIXES:
        pixels = read_video_frame(path, frame, at)
        return pixels, {"premultiplied": True, "video_color": probe(path).color}
    pixels, attrs = read_image(path)
    return check_channels(pixels, path), attrs


def read_video_frame(path: Path, index: int, at: str | None = None) -> np.ndarray:
    """Decode frame `index` (from 0), or the frame at source timecode `at`: a keyframe seek, then
    decoding forward; RGB, 16-bit when the stream has more than 8 bits."""
    from kwaflux_ofx.conform.clips import position
    from kwaflux_ofx.media.decode import read_frames
    from kwaflux_ofx.media.probe import probe

    if not path.is_file():
        raise MediaError("video not found", path)
    info = probe(path)
    index = position(at, info, index)
    if not 0 <= index < info.frames:
        raise MediaError(f"has no frame {index} (it has {info.frames})", path)
    damaged: dict[int, str] = {}
    for _, pixels in read_frames(info, index, index + 1, damaged):
        return pixels[:, :, :3]
    if index in damaged:
        raise MediaError(f"frame {index} is damaged: it {damaged[index]}", path)
    raise MediaError(f"has no frame {index}", path)


def cmd_upscale(args) -> int:
    if clips.is_clip_input(str(args.input)):
        return clips.cmd_clips(args, _engine(args), _scale)
    _check_output(args)
    pixels, attrs = _load_input(args.input)
    engine = _engine(args)
    opts = _settings(args, engine, pixels, args.input.name, args.input)
    bar, on_tile = _progress(args, args.input.name)
    with bar:
        out = engine.process(
            pixels, premultiplied=attrs.get("premultiplied", True), on_tile=on_tile, **opts
        )
    from kwaflux_ofx.media.stills import write_image

    write_image(args.output, _storable(out, args.output), attrs)
    h, w = out.shape[:2]
    if not args.quiet:
        print(f"{args.output}: {w}x{h} {out.dtype} (x{opts['scale']}, denoise {opts['denoise']:g})")
    return 0


def before_after(source: np.ndarray, processed: np.ndarray) -> np.ndarray:
    """Left half: source Lanczos-scaled to the processed size; right half: processed; a 2 px divider."""
    from kwaflux_ofx.engine.engine import from_float, to_float
    from kwaflux_ofx.engine.resample import resize

    h, w = processed.shape[:2]
    half = w // 2
    left = resize(
        to_float(source)[:, : max(1, -(-source.shape[1] * half // w))], h, half, "lanczos3"
    )
    out = processed.copy()
    out[:, :half] = from_float(left[:, :half], processed.dtype)
    peak = np.iinfo(out.dtype).max if out.dtype.kind == "u" else 1.0
    out[:, max(0, half - 1) : half + 1, :3] = peak
    return out


def cmd_preview(args) -> int:
    _check_output(args)
    pixels, attrs = _load_input(args.input, args.frame, args.at)
    engine = _engine(args)
    color = attrs.pop("video_color", None)
    opts = _settings(args, engine, pixels, args.input.name, args.input, color)
    bar, on_tile = _progress(args, "preview")
    with bar:
        out = engine.process(
            pixels, premultiplied=attrs.get("premultiplied", True), on_tile=on_tile, **opts
        )
    from kwaflux_ofx.media.stills import write_image

    write_image(args.output, _storable(before_after(pixels, out), args.output), attrs)
    if not args.quiet:
        print(
            f"{args.output}: left = source (Lanczos), right = Kwaflux x{opts['scale']}, "
            f"denoise {opts['denoise']:g}"
        )
    return 0
