"""Try the fusion's and alignment's constants on eval/temporal.py's clips before changing them.

python -m kwaflux_lab.eval.sweep_fusion                           # the shipped constants
python -m kwaflux_lab.eval.sweep_fusion --set align.KEEP_ZERO=0.1  # one variant
python -m kwaflux_lab.eval.sweep_fusion --set temporal.POOL=9 --set temporal.NEAR_SHARE=0.35
python -m kwaflux_lab.eval.sweep_fusion --radius 3                 # a wider window

Each run prints, per clip and Gaussian sigma (15, 25): PSNR-Y (and the single-frame model's),
the error in moving areas and the flicker (eval/temporal.py's figures) of the temporal path, on
eval/temporal.py's clips, crops, noise seeds and strengths, one thread. Constants are module attributes of kwaflux_ofx.engine.align
or .temporal, read when the fusion graph is built; the run builds it after setting them.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from kwaflux_lab import jobs, paths
from kwaflux_lab.eval import temporal as et
from kwaflux_lab.eval.common import CLIPS, flicker, flows_on_clean, gaussian, load_clip, psnr_y

paths.checkout_on_path()

MODEL = "kwaflux-denoise"
SIGMAS = (15, 25)


def parse_set(text: str) -> tuple[str, str, float]:
    """'module.NAME=value' -> (module, NAME, value), for align and temporal only."""
    try:
        target, value = text.split("=", 1)
        module, name = target.split(".", 1)
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected module.NAME=number") from None
    if module not in ("align", "temporal"):
        raise argparse.ArgumentTypeError(f"{text!r}: the module is align or temporal")
    return module, name, number


def apply(changes: list[tuple[str, str, float]]) -> None:
    from kwaflux_ofx.engine import align, temporal

    modules = {"align": align, "temporal": temporal}
    for module, name, number in changes:
        mod = modules[module]
        if not hasattr(mod, name):
            raise SystemExit(f"kwaflux_ofx.engine.{module} has no {name}")
        old = getattr(mod, name)
        setattr(mod, name, type(old)(number) if isinstance(old, int | float) else number)
    # The tile margins derived at import (align.MARGIN, temporal.FUSION_RADIUS) stay as they
    # were: the crops here are one tile each, so no margin is ever read.


def main(argv: list[str] | None = None) -> int:
    ap = jobs.parser(__doc__.splitlines()[0])
    ap.add_argument("--set", type=parse_set, action="append", default=[],
                    metavar="MODULE.NAME=VALUE", help="a constant to change (repeatable)")  # fmt: skip
    ap.add_argument("--radius", type=int, default=et.RADIUS, help="temporal radius")
    ap.add_argument("--frames", type=int, default=14, help="frames of each clip")
    ap.add_argument("--size", type=int, default=160, help="centre crop (px)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    apply(args.set)
    from kwaflux_ofx import Engine, settings

    # One tile the size of the crop: see apply() on the margins.
    engine = Engine(device="cpu", threads=1, temporal_method="fusion", tile=args.size)
    max_sigma = engine.model_spec(MODEL).max_noise * 255.0
    # Scored where every frame has its full window at the widest radius allowed, so every
    # radius is scored on the same frames.
    widest = settings.TEMPORAL_RADIUS_MAX
    if args.frames <= 2 * widest + 1:
        raise SystemExit(f"--frames must exceed {2 * widest + 1}")
    keep = slice(widest, args.frames - widest)
    label = " ".join(f"{m}.{n}={v:g}" for m, n, v in args.set) or "shipped constants"
    print(f"{label}, radius {args.radius}, frames {keep.start}-{keep.stop - 1} scored")
    print("| clip | sigma | PSNR-Y | single-frame | moving-area error | flicker | clean flicker |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in CLIPS:
        clean = load_clip(name, args.frames, args.size)
        flows = flows_on_clean(clean)
        for sigma in SIGMAS:
            noisy = gaussian(clean, sigma, 7 + sigma)
            strength = min(sigma / max_sigma, 1.0)
            out = list(
                engine.process_sequence(noisy, denoise=strength, temporal_radius=args.radius,
                                        denoise_model=MODEL)
            )  # fmt: skip
            single = [engine.process(f, denoise=strength, denoise_model=MODEL) for f in noisy[keep]]
            single_psnr = np.mean([psnr_y(c, o) for c, o in zip(clean[keep], single, strict=True)])
            # flows[t - 1] maps frame t - 1 onto t: the pairs inside the scored frames.
            pair_flows = flows[keep.start : keep.stop - 1]
            r = et.row("temporal", clean[keep], out[keep], pair_flows, 0.0)
            print(
                f"| {name} | {sigma} | {r['psnr']:.2f} | {single_psnr:.2f} | {r['moving_err']:.2f} | "
                f"{r['flicker']:.2f} | {flicker(clean[keep], pair_flows):.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
