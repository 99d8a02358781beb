"""SR on footage the evaluation clips cannot stand for: PSNR and flicker of the shipped SR models
and candidates on held-out frames of the real clips (sets/real_video.py), beside the two
evaluation clips; writes the "SR on footage" section of docs/models.md.

    cd python && ../.venv/bin/python -m kwaflux_lab.eval.footage [--candidate DIR ...]

The frames are the last fifth of each clip (train/sr.py holds them out of --video-share
training), shrunk as the SR trainer shrinks footage (half the temporal model's factor), centre
crops of SIDE px, FRAMES consecutive frames a clip. They come from the clips the footage
fine-tune trained on, so they measure the fit to that footage, not to footage never seen: the
evaluation clips' rows (eval/evaluate.py's frames) are the unseen case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.eval import evaluate as ev
from kwaflux_lab.sets import real_video
from kwaflux_lab.train import sr as train_sr

SIDE = 160
FRAMES = 6
# A lens's softness before the sensor samples: the evaluation clips blurred by this sigma (HR
# pixels) before the area downscale, so the input has lost detail that the truth still holds.
# The SR trainer blurs a share of its samples before the downscale (degrade.sr_pair); this set
# shows what that teaches, where the plain set shows what it costs on input that was not blurred.
LENS_SIGMA = 0.6


def lens_down(img: np.ndarray, scale: int) -> np.ndarray:
    """`img` blurred by LENS_SIGMA, then area-averaged down by `scale`."""
    from scipy.ndimage import gaussian_filter

    soft = gaussian_filter(img.astype(np.float32), (LENS_SIGMA, LENS_SIGMA, 0), mode="reflect")
    return ev.area_down(np.clip(np.rint(soft), 0, 255).astype(np.uint8), scale)


def held_out_frames(side: int = SIDE, frames: int = FRAMES) -> dict[str, np.ndarray]:
    """'clip #i' -> frame, the first `frames` held-out frames of each installed clip that has
    room for a `side` crop (the same keys as evaluate.video_frames, so its helpers apply)."""
    out: dict[str, np.ndarray] = {}
    for c in real_video.CLIPS:
        clip = real_video.read_installed(
            c, train_sr.FOOTAGE_SHRINK_DIVISOR, train_sr.FOOTAGE_FRAMES
        )
        if clip is None:
            continue
        n, h, w = clip.shape[:3]
        start = train_sr.held_out_start(n)
        if h < side or w < side or n - start < frames:
            continue
        y, x = (h - side) // 2, (w - side) // 2
        for i in range(frames):
            out[f"{c.name} #{i}"] = clip[start + i, y : y + side, x : x + side]
    return out


def measure(
    sets: dict[str, tuple[dict[str, np.ndarray], Callable]],
    scale: int,
    models: dict[str, str],
    engine,
) -> dict:
    """Per frame set: PSNR-Y of each method (mean over its frames), its mean flicker ratio and
    its mean detail ratio (evaluate.sr_video_detail) over the set's clips."""
    out = {}
    for label, (frames, down) in sets.items():
        kept: dict[str, dict[str, np.ndarray]] = {}
        rows = ev.evaluate_sr(frames, scale, engine, models, down=down, outputs=kept)
        ratios = ev.sr_video_flicker(frames, kept)
        detail = ev.sr_video_detail(frames, kept, scale)
        out[label] = {
            r.method: (
                r.psnr,
                float(np.mean(list(ratios[r.method].values()))),
                float(np.mean(list(detail[r.method].values()))),
            )
            for r in rows
            if r.method in ratios
        }
    return out


def native_sharpening(
    frames: dict[str, np.ndarray], scale: int, models: dict[str, str], engine
) -> dict[str, float]:
    """Per method: the high-pass energy (luma, evaluate.sr_video_detail's measure) of `frames`
    upscaled at their own size, over Lanczos-3's. No truth exists at the larger size, so this
    is not fidelity: it says how much crisper than interpolation a method makes footage as a
    user hands it over, where the source is as soft as its lens and codec left it."""
    methods = ev.sr_methods(scale, engine, models)
    del methods["ffmpeg lanczos"]
    kept = {m: {k: fn(f) for k, f in frames.items()} for m, fn in methods.items()}
    # sr_video_detail divides by the frames' own energy (here at the smaller size): the ratio
    # of two methods' figures cancels it.
    detail = ev.sr_video_detail(frames, kept, scale)
    lanczos = detail["Lanczos-3"]
    return {m: float(np.mean([d[c] / lanczos[c] for c in lanczos])) for m, d in detail.items()}


def report(figures: dict, scale: int) -> list[str]:
    sets = list(figures)
    methods = list(next(iter(figures.values())))
    lines = [
        f"SR x{scale}: PSNR-Y (dB) / flicker over the clean frames' own / high-pass detail "
        "over the truth's (both means over clips; the truth scores 1 on each).",
        "",
        "| method | " + " | ".join(sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for m in methods:
        cells = [
            f"{figures[s][m][0]:.2f} / {figures[s][m][1]:.3f} / {figures[s][m][2]:.2f}"
            for s in sets
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument(
        "--candidate",
        type=Path,
        action="append",
        default=[],
        help="a folder of exported kwaflux-sr-xN.onnx (export --out-dir) to measure beside",
    )
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4], choices=(2, 4))
    ap.add_argument("--no-write", action="store_true", help="print, leave docs/models.md alone")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from kwaflux_ofx import Engine
    from kwaflux_ofx.models.registry import resolve_model

    # One engine for every set and scale: its sessions stay loaded between them.
    engine = Engine(device="cpu", threads=1)

    held = held_out_frames()
    if not held:
        raise SystemExit("no real clip installed (python -m kwaflux_lab.sets.real_video install)")
    clips = ev.video_frames()
    sets = {
        f"held-out footage ({len(held) // FRAMES} clips)": (held, ev.area_down),
        "evaluation clips": (clips, ev.area_down),
        f"evaluation clips, lens blur {LENS_SIGMA}": (clips, lens_down),
    }
    out = [
        "Written by `python -m kwaflux_lab.eval.footage`"
        + "".join(f" --candidate {c}" for c in args.candidate)
        + f": {FRAMES} held-out frames of each real clip ({SIDE} px centre crops, the last "
        "fifth of each clip, which the footage fine-tune does not train on but whose scenes it "
        f"does) and {ev.VIDEO_FRAMES} frames of each evaluation clip (never trained on), "
        "area-averaged down and brought back; in the last column the evaluation clips are "
        f"blurred (Gaussian, sigma {LENS_SIGMA} px) before the downscale, as a lens softens "
        "what the sensor samples, and the truth is still the unblurred frame.",
    ]
    for scale in args.scales:
        models = {f"kwaflux-sr-x{scale} (shipped)": str(resolve_model(f"kwaflux-sr-x{scale}"))}
        for c in args.candidate:
            path = c / f"kwaflux-sr-x{scale}.onnx"
            if path.is_file():
                models[f"{c.name}"] = str(path)
        out += ["", *report(measure(sets, scale, models, engine), scale)]
        native = native_sharpening(clips, scale, models, engine)
        out += [
            "",
            f"SR x{scale} of the evaluation clips' frames at their own size (no truth there, so "
            "not fidelity): high-pass detail over Lanczos-3's, how much crisper than "
            "interpolation each makes footage as it is handed over.",
            "",
            "| method | detail over Lanczos-3 |",
            "|---|---:|",
            *(f"| {m} | {v:.2f} |" for m, v in native.items()),
        ]
    text = "\n".join(out)
    print(text)
    if not args.no_write:
        docsection.write_section(paths.MODELS_DOC, "sr-footage", text, heading="## SR on footage")


if __name__ == "__main__":
    main()
