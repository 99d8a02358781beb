"""Colour: the evaluation photos handed over as linear light, ACES and camera log, against the
same photos display-referred; writes the "Colour" section of docs/models.md.

    ../.venv/bin/python -m kwaflux_lab.eval.colour     # from python/ (needs the [train] extra: OCIO)

Each photo is bicubic-halved (quartered), then converted with OpenColorIO's studio config into
the space a host would hand over (a Natron Read node, an EXR, a colour-managed Resolve
timeline, camera log footage), upscaled by the engine, brought back to display with OCIO and
scored against the original (PSNR on Y, as eval/evaluate.py). "as-is" feeds the models the values
as they come (what every release before this one did); "converted" names the space
(Engine(colour=...)). The denoise rows add Gaussian noise to the display picture first.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.eval.common import PHOTOS, bicubic_down, load_photos, mark, psnr_y, to_u8
from kwaflux_ofx import Engine
from kwaflux_ofx.engine.colour_curves import SPACES
from kwaflux_ofx.engine.resample import resize
from kwaflux_ofx.settings import ColourSpace

DISPLAY = "sRGB Encoded Rec.709 (sRGB)"
SPACES_EVALUATED = (ColourSpace.LINEAR, ColourSpace.ACESCCT, ColourSpace.DAVINCI_INTERMEDIATE,
                    ColourSpace.ARRI_LOGC3, ColourSpace.ACESCG, ColourSpace.SONY_SLOG3)  # fmt: skip
GOAL_SR_DB = 0.1
GOAL_DENOISE_DB = 0.3
GOAL_STRENGTH = 0.10
SIGMA = 10.0

log = logging.getLogger("eval_colour")


class Ocio:
    """OpenColorIO's studio config: the reference conversions (no file, no download)."""

    def __init__(self):
        import PyOpenColorIO as ocio

        self.config = ocio.Config.CreateFromFile("ocio://studio-config-latest")

    def convert(self, rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
        out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
        self.config.getProcessor(src, dst).getDefaultCPUProcessor().applyRGB(out)
        return out

    def hand_over(self, display: np.ndarray, space: ColourSpace) -> np.ndarray:
        return self.convert(display, DISPLAY, SPACES[space].ocio_name)

    def shown(self, pixels: np.ndarray, space: ColourSpace) -> np.ndarray:
        return self.convert(pixels, SPACES[space].ocio_name, DISPLAY)


def sr_rows(engine, ocio, photos, scale: int) -> tuple[list[str], list[float]]:
    """Per space: mean PSNR-Y display-referred, as-is and converted, and the gap to display."""
    per: dict[str, list[float]] = {"bicubic": [], "display": []}
    for hr in photos.values():
        lr = bicubic_down(hr, scale).astype(np.float32) / 255.0
        h, w = hr.shape[:2]
        per["bicubic"].append(psnr_y(hr, to_u8(resize(lr, h, w, "bicubic")), scale))
        per["display"].append(psnr_y(hr, to_u8(engine.process(lr, scale=scale)), scale))
        for space in SPACES_EVALUATED:
            handed = ocio.hand_over(lr, space)
            as_is = ocio.shown(engine.process(handed, scale=scale), space)
            conv = ocio.shown(engine.process(handed, scale=scale, colour=space), space)
            per.setdefault(f"{space.value} as-is", []).append(psnr_y(hr, to_u8(as_is), scale))
            per.setdefault(f"{space.value} converted", []).append(psnr_y(hr, to_u8(conv), scale))
    mean = {k: float(np.mean(v)) for k, v in per.items()}
    rows, gaps = [], []
    rows.append(f"| display-referred (reference) | {mean['display']:.2f} | — | — |")
    for space in SPACES_EVALUATED:
        a, c = mean[f"{space.value} as-is"], mean[f"{space.value} converted"]
        gaps.append(c - mean["display"])
        rows.append(
            f"| {space.label} | {a:.2f} ({a - mean['display']:+.2f}) | {c:.2f} | "
            f"{c - mean['display']:+.3f} |"
        )
    rows.append(f"| bicubic | {mean['bicubic']:.2f} | — | — |")
    return rows, gaps


def denoise_rows(engine, ocio, photos) -> tuple[list[str], dict]:
    """Auto denoise at SIGMA on the display picture and on the same noisy picture as linear."""
    rng = np.random.default_rng(10)
    gains = {"display": [], "as-is": [], "converted": []}
    strengths = {"display": [], "converted": []}
    for hr in photos.values():
        clean = hr.astype(np.float32) / 255.0
        noisy = np.clip(clean + rng.normal(0, SIGMA / 255, clean.shape), 0, 1).astype(np.float32)
        base = psnr_y(hr, to_u8(noisy))
        lin = ocio.hand_over(noisy, ColourSpace.LINEAR)
        sd = engine.auto_strength([noisy]).strength
        sc = engine.auto_strength([lin], colour=ColourSpace.LINEAR).strength
        strengths["display"].append(sd)
        strengths["converted"].append(sc)
        outs = {
            "display": engine.process(noisy, denoise="auto"),
            "as-is": ocio.shown(engine.process(lin, denoise="auto"), ColourSpace.LINEAR),
            "converted": ocio.shown(
                engine.process(lin, denoise="auto", colour=ColourSpace.LINEAR), ColourSpace.LINEAR
            ),
        }
        for k, out in outs.items():
            gains[k].append(psnr_y(hr, to_u8(out)) - base)
    g = {k: float(np.mean(v)) for k, v in gains.items()}
    ratio = max(abs(c / d - 1) for d, c in zip(*strengths.values(), strict=True) if d > 0)
    rows = [
        f"| display-referred | {g['display']:+.2f} |",
        f"| linear, as-is | {g['as-is']:+.2f} |",
        f"| linear, converted | {g['converted']:+.2f} |",
    ]
    return rows, {"gap": g["converted"] - g["display"], "strength_ratio": ratio}


def extremes(engine) -> list[str]:
    """A highlight at 4.0, ACEScg negatives and non-finite samples through SR x2."""
    frame = np.full((64, 64, 3), 0.18, np.float32)
    frame[28:36, 28:36] = 4.0
    frame[8:16, 8:16] = (-0.04, 0.25, 0.08)
    frame[50, 50, 1] = np.nan
    out_lin = engine.process(frame, scale=2, colour=ColourSpace.LINEAR)
    out_cg = engine.process(frame, scale=2, colour=ColourSpace.ACESCG)
    as_is = engine.process(np.nan_to_num(frame), scale=2)
    nan_in, nan_out = int(np.isnan(frame).sum()), int(np.isnan(out_lin).sum())
    return [
        f"- Highlight at 4.0 (linear): {float(np.nanmax(out_lin)):.2f} at most after SR x2, "
        f"{float(out_lin[60:68, 60:68].min()):.2f} in its middle (fed as-is: "
        f"{float(np.nanmax(as_is)):.2f} at most, {float(as_is[60:68, 60:68].min()):.2f} in the "
        "middle)",
        f"- ACEScg negative red -0.04: {float(out_cg[20:28, 20:28, 0].mean()):+.3f} after SR x2",
        f"- NaN samples: {nan_in} in, {nan_out} out (the 2x2 it became); inf none in, "
        f"{int(np.isinf(out_lin).sum())} out",
    ]


def crop_sheet(engine, ocio, hr: np.ndarray, path: Path) -> None:
    """100% crops side by side, each shown on a display: Lanczos, display-referred, linear fed
    as-is, linear converted, the original (astronaut's helmet rim: where linear light rims)."""
    from PIL import Image

    lr = bicubic_down(hr, 2).astype(np.float32) / 255.0
    lin = ocio.hand_over(lr, ColourSpace.LINEAR)
    h, w = hr.shape[:2]
    tiles = [
        resize(lr, h, w, "lanczos3"),
        engine.process(lr, scale=2),
        ocio.shown(engine.process(lin, scale=2), ColourSpace.LINEAR),
        ocio.shown(engine.process(lin, scale=2, colour=ColourSpace.LINEAR), ColourSpace.LINEAR),
        hr.astype(np.float32) / 255.0,
    ]
    crops = [to_u8(np.clip(t, 0, 1))[60:188, 40:168] for t in tiles]
    Image.fromarray(np.concatenate(crops, 1)).save(path)


def main(argv: list[str] | None = None) -> int:
    ap = jobs.parser(__doc__)
    ap.add_argument("--size", type=int, default=256, help="centre crop of each photo")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--doc", type=Path, default=paths.MODELS_DOC)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    engine = Engine(device="cpu", threads=args.threads)
    ocio = Ocio()
    photos = load_photos(args.size, list(PHOTOS))
    lines = [
        "Written by `python -m kwaflux_lab.eval.colour` (scikit-image's photos, centre "
        f"{args.size}×{args.size}; OpenColorIO's studio config makes and reads the spaces). "
        "PSNR-Y in dB after bringing each result back to display; in brackets the gap to the "
        "display-referred result.",
        "",
    ]
    met = True
    for scale in (2, 4):
        rows, gaps = sr_rows(engine, ocio, photos, scale)
        worst = max(abs(g) for g in gaps)
        met &= worst <= GOAL_SR_DB
        log.info("x%d worst gap %.3f dB", scale, worst)
        lines += [
            f"SR x{scale}:",
            "",
            "| handed over as | as-is (before) | converted | converted − display |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- Goal: converted within {GOAL_SR_DB} dB of display-referred: worst "
            f"{worst:.3f} dB, {mark(worst <= GOAL_SR_DB)}",
            "",
        ]
    rows, d = denoise_rows(engine, ocio, photos)
    lines += [
        f"Auto denoise, Gaussian sigma {SIGMA:g} on the display picture (gain over the noisy "
        "input, PSNR-Y):",
        "",
        "| picture | gain dB |",
        "|---|---|",
        *rows,
        "",
        f"- Goal: linear within {GOAL_DENOISE_DB} dB of display: {d['gap']:+.3f} dB, "
        f"{mark(abs(d['gap']) <= GOAL_DENOISE_DB)}",
        f"- Goal: auto strength from the linear frame within {GOAL_STRENGTH:.0%} of the display "
        f"one: worst {d['strength_ratio']:.1%}, "
        f"{mark(d['strength_ratio'] <= GOAL_STRENGTH)}",
        "",
        *extremes(engine),
    ]
    sheet = args.doc.parent / "colour-crops.png"
    crop_sheet(engine, ocio, photos["astronaut"], sheet)
    lines += [
        "",
        f"![crops]({sheet.name}) 100% crops of astronaut x2, left to right: Lanczos, "
        "display-referred, linear fed as-is (dark rims along the bright helmet edge), linear "
        "converted, the original.",
    ]
    docsection.write_section(args.doc, "colour", "\n".join(lines), "## Colour")
    print("\n".join(lines))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
