"""Export the latest training checkpoints to the shipped ONNX models (fp32 + fp16), check that
onnxruntime matches torch, and write each model's metadata sidecar (.json)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxconverter_common import float16

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.sets import data
from kwaflux_lab.train.common import checkpoint_path, load_checkpoint
from kwaflux_lab.train.nets import CompactSR, NoiseMapDenoiser, TemporalDenoiser
from kwaflux_lab.train.rep import deploy

log = logging.getLogger(__name__)

MODELS_DIR = paths.MODELS_DIR
OPSET = 17
PARITY_TOLERANCE = 1e-4


V2_SUFFIX = "-v2"  # runs on the second data set (sets/photos_v2.py): sr-x2-v2, denoise-v2, ...


def lineage(run: str, config: dict | None = None) -> list[str]:
    """The run and the runs it was fine-tuned from, newest first (each checkpoint's `init`, as
    far back as the checkpoints are there): sr-x2-unblurred, sr-x2-noblur, sr-x2-video, ..."""
    runs, cfg = [run], config or {}
    while cfg.get("init") and cfg["init"] not in runs:
        runs.append(str(cfg["init"]))
        if not checkpoint_path(runs[-1]).is_file():
            break
        cfg = load_checkpoint(runs[-1])["config"]
    return runs


def training_photos(run: str, config: dict | None = None) -> tuple[data.Photo, ...]:
    """The photographs a run trained on: the 36 of v1, or the record of v2 where the run or one
    it was fine-tuned from (lineage) is a -v2 run: the fine-tunes keep the v2 patches."""
    if any(r.endswith(V2_SUFFIX) for r in lineage(run, config)):
        from kwaflux_lab.sets import photos_v2

        return tuple(e.photo for e in photos_v2.read_tsv() if e.role == "train")
    return data.TRAIN_PHOTOS


def training_data_summary(
    photos: tuple[data.Photo, ...] = data.TRAIN_PHOTOS, footage: bool = False
) -> str:
    """One line for the model's metadata: the photos by package and licence, and the real clips
    where the run drew footage (train/sr.py --video-share)."""
    counts: dict[str, int] = {}
    for p in photos:
        counts[p.package] = counts.get(p.package, 0) + 1
    parts = ", ".join(f"{n} from {pkg}" for pkg, n in counts.items())
    licences = ", ".join(sorted({p.license for p in photos}))
    text = (
        f"{len(photos)} photographs from Debian packages ({parts}); licences {licences}; "
        "file list in docs/models.md"
    )
    if footage:
        from kwaflux_lab.sets import real_video

        clips = real_video.CLIPS
        text += (
            f"; frames of {len(clips)} video clips from Debian packages "
            f"({', '.join(real_video.PACKAGES)}); licences "
            f"{', '.join(sorted({c.license for c in clips}))}; clip list in docs/models.md"
        )
    return text


def describe_fine_tune(cfg: dict) -> str:
    """What a fine-tuned run added to the network it started from (empty for a run from scratch)."""
    if "init" not in cfg:
        return ""
    if "adv" in cfg:  # train/detail.py
        return (
            f"; detail look: fine-tuned from {cfg['init']} with L1, spectrum, high-pass energy "
            "and a patch-GAN loss"
        )
    share = cfg.get("video_share", 0.0)
    return f"; fine-tuned from {cfg['init']} with {share:.0%} of each batch from real footage"


def build(ck: dict, weights: str = "ema") -> torch.nn.Module:
    """The checkpoint's network with its re-parameterised blocks folded into plain convs (the
    moving average of the weights by default: what validation measured)."""
    cfg = ck["config"]
    rep = cfg.get("rep", False)
    if cfg["arch"] == "CompactSR":
        model: torch.nn.Module = CompactSR(cfg["scale"], cfg["channels"], cfg["convs"], rep=rep)
    else:
        model = NoiseMapDenoiser(cfg["channels"], cfg["convs"], rep=rep)
    model.load_state_dict(ck[weights] if weights in ck else ck["model"])
    return deploy(model).eval()


def export_one(run: str, out_name: str, out_dir: Path = MODELS_DIR) -> dict:
    ck = load_checkpoint(run)
    model = build(ck)
    cfg = ck["config"]
    photos = training_photos(run, cfg)
    is_dn = cfg["arch"] == "NoiseMapDenoiser"
    dyn = {2: "height", 3: "width"}
    if is_dn:
        example: tuple[torch.Tensor, ...] = (torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64))
        names = ["input", "noise_level"]
    else:
        example = (torch.rand(1, 3, 64, 64),)
        names = ["input"]
    path = out_dir / f"{out_name}.onnx"
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=names,
        output_names=["output"],
        opset_version=OPSET,
        dynamic_axes={n: dyn for n in [*names, "output"]},
        dynamo=False,
    )
    scale = 1 if is_dn else cfg["scale"]
    meta = {
        "kind": "denoise" if is_dn else "sr",
        "scale": str(scale),
        "channels": "3",
        "range": "0-1",
        "noise_input": "noise_level" if is_dn else "",
        "max_noise": f"{cfg['max_noise']:.6f}" if is_dn else "0",
        # The noise map is the RMS of the damage (degrade.denoise_pair), so a measured noise
        # level converts to a strength: automatic strength is allowed.
        "noise_level": "rms" if is_dn else "",
        "receptive_field": str(model.receptive_field),
        "name": out_name,
        "description": (
            f"Kwaflux denoiser ({cfg['convs']} convs x {cfg['channels']} ch at half resolution, "
            "FFDNet-style noise-level map; sensor noise, colour noise, grain, JPEG damage)"
            if is_dn
            else f"Kwaflux x{scale} super-resolution ({cfg['convs']} convs x {cfg['channels']} ch at "
            "input resolution, pixel shuffle, bilinear residual; realistic degradations)"
            + describe_fine_tune(cfg)
        ),
        "license": "Apache-2.0",
        "training_data": training_data_summary(photos, footage=bool(cfg.get("video_share"))),
        "training_steps": str(ck["step"]),
        "training_hours": f"{ck.get('elapsed', 0.0) / 3600:.2f}",
        "training_seed": str(ck["seed"]),
    }
    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=f"kwaflux.{k}", value=v)
    m.producer_name = "kwaflux python/export.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(path))

    parity = check_parity(model, path, is_dn, scale)
    m16 = float16.convert_float_to_float16(m, keep_io_types=False)
    path16 = out_dir / f"{out_name}.fp16.onnx"
    onnx.checker.check_model(m16)
    onnx.save(m16, str(path16))
    fp16_err = check_fp16(model, path16, is_dn)

    info = {
        **file_facts(path, path16),
        "parameters": sum(p.numel() for p in model.parameters()),
        "metadata": {f"kwaflux.{k}": v for k, v in meta.items()},
        "architecture": cfg,
        "training": training_facts(ck),
        "parity_fp32_max_abs": parity,
        "fp16_vs_torch_max_abs": fp16_err,
        "training_photos": [p.path for p in photos],
    }
    (out_dir / f"{out_name}.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("%s: %d bytes, parity %.2e, fp16 %s", path.name, info["bytes"], parity, fp16_err)
    if parity > PARITY_TOLERANCE:
        raise SystemExit(f"{path.name}: onnxruntime differs from torch by {parity:.2e}")
    return info


def _feeds(x: torch.Tensor, is_dn: bool, dtype=np.float32) -> tuple[dict, tuple]:
    args: tuple[torch.Tensor, ...] = (x,)
    feeds = {"input": x.numpy().astype(dtype)}
    if is_dn:
        nmap = torch.full((1, 1, *x.shape[-2:]), 20.0 / 255.0)
        args = (x, nmap)
        feeds["noise_level"] = nmap.numpy().astype(dtype)
    return feeds, args


def check_parity(model: torch.nn.Module, path: Path, is_dn: bool, scale: int) -> float:
    """Max abs difference between torch and onnxruntime (CPU, fp32) on odd and even sizes."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for h, w in ((67, 45), (128, 96), (5, 9)):
        x = torch.rand(1, 3, h, w, generator=g)
        feeds, args = _feeds(x, is_dn)
        out = sess.run(["output"], feeds)[0]
        with torch.no_grad():
            ref = model(*args).numpy()
        assert out.shape == (1, 3, h * scale, w * scale), out.shape
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


def check_fp16(model: torch.nn.Module, path: Path, is_dn: bool) -> float | str:
    """fp16 model vs fp32 torch, where this onnxruntime can run fp16 on the CPU."""
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(1))
        feeds, args = _feeds(x, is_dn, np.float16)
        out = sess.run(["output"], feeds)[0].astype(np.float32)
    except Exception as exc:  # CPU builds may lack fp16 kernels; the GPU path is the target
        return f"not run on CPU: {type(exc).__name__}"
    with torch.no_grad():
        ref = model(*args).numpy()
    return float(np.abs(out - ref).max())


# -- the learned temporal model ----------------------------------------------------------------
TEMPORAL_NAME = "kwaflux-temporal"
TEMPORAL_RUN = "temporal"
INIT_NAME = "kwaflux-denoise"  # the built-in single-frame model a temporal run starts from
TEMPORAL_PARITY_SIZES = ((67, 45), (37, 53))  # odd on purpose: the tiles' last rows and columns


class _Window(torch.nn.Module):
    """TemporalDenoiser on the fusion graph's outputs: the aligned window K×3×H×W as the fusion
    gives it (one window, so the batch axis is added here)."""

    def __init__(self, net: TemporalDenoiser) -> None:
        super().__init__()
        self.net = net

    def forward(self, fused: torch.Tensor, frames: torch.Tensor, level: torch.Tensor):
        return self.net(fused, frames[None], level)


def temporal_graph(net: TemporalDenoiser, half: bool = False) -> onnx.ModelProto:
    """One graph: the shipped fusion (temporal.fusion_model with its aligned frames exposed)
    feeding the exported network; `half` runs the network in fp16 (inputs, alignment and
    fusion stay fp32, so the block matching decides as on the fp32 path)."""
    import io

    from kwaflux_ofx.engine import temporal

    buf = io.BytesIO()
    example = (
        torch.rand(1, 3, 64, 64),
        torch.rand(net.frames, 3, 64, 64),
        torch.rand(1, 1, 64, 64),
    )
    names = ["fused", "frames", "level"]
    torch.onnx.export(
        _Window(net).eval(),
        example,
        buf,
        input_names=names,
        output_names=["output"],
        opset_version=OPSET,
        dynamic_axes={n: {2: "height", 3: "width"} for n in [*names, "output"]},
        dynamo=False,
    )
    body = onnx.load_from_string(buf.getvalue())
    if half:
        body = float16.convert_float_to_float16(body, keep_io_types=True)
    body = onnx.compose.add_prefix(body, "net/")
    fusion = onnx.load_from_string(temporal.fusion_model(True, frames_out=True))
    body.ir_version = fusion.ir_version
    merged = onnx.compose.merge_models(
        fusion,
        body,
        io_map=[("fused", "net/fused"), ("frames", "net/frames"), ("level", "net/level")],
        outputs=["net/output"],
        name="kwaflux-temporal",
    )
    graph = merged.graph
    graph.node.append(onnx.helper.make_node("Identity", ["net/output"], ["output"]))
    out = onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 3, "H", "W"])
    del graph.output[:]
    graph.output.append(out)
    # The network's first conv takes exactly this many frames.
    graph.input[0].type.tensor_type.shape.dim[0].Clear()
    graph.input[0].type.tensor_type.shape.dim[0].dim_value = net.frames
    onnx.checker.check_model(merged)
    return merged


def temporal_window(
    size: tuple[int, int], seed: int, pictures: np.ndarray
) -> tuple[np.ndarray, float]:
    """A real window for the parity check: one of `pictures` (uint8 N x H x W x 3, the held-out
    photos by default) seen by a panning camera, Gaussian noise, 8-bit, in the engine's order
    (the frame rendered first), cut to `size`."""
    from kwaflux_lab.sets import temporal_data as td

    val = pictures
    rng = np.random.default_rng(seed)
    v = rng.uniform(-td.MAX_STEP, td.MAX_STEP, 2)
    times = range(-td.RADIUS, td.RADIUS + 1)
    motion = td.Motion(tuple((int(round(v[0] * t)), int(round(v[1] * t))) for t in times))
    side = max(size) + 16
    frames = td.render(val[seed % len(val)], side, motion).astype(np.float32) / 255.0
    sigma = 25.0 / 255.0
    noisy = np.rint(np.clip(frames + sigma * rng.standard_normal(frames.shape), 0, 1) * 255) / 255
    h, w = size
    return td.in_engine_order(noisy)[:, 5 : 5 + h, 7 : 7 + w].astype(np.float32), sigma


def temporal_parity(net: TemporalDenoiser, path: Path, pictures: np.ndarray | None = None) -> float:
    """Max abs difference between the one-graph model and torch fed by the fusion graph in
    onnxruntime, over real windows of odd sizes cut from `pictures` (default: the held-out
    validation photos of the prepared patches)."""
    from kwaflux_ofx.engine import temporal

    if pictures is None:
        from kwaflux_lab.sets import patches

        _, pictures = patches.load()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    fusion = ort.InferenceSession(temporal.fusion_model(True, frames_out=True), opts, providers=cpu)
    sess = ort.InferenceSession(str(path), opts, providers=cpu)
    worst = 0.0
    for seed, size in enumerate(TEMPORAL_PARITY_SIZES):
        frames, sigma = temporal_window(size, seed, pictures)
        feeds = {
            "input_frames": np.ascontiguousarray(frames.transpose(0, 3, 1, 2)),
            "sigma": np.array([sigma], np.float32),
        }
        fused, level, aligned = fusion.run(["fused", "level", "frames"], feeds)
        out = sess.run(["output"], feeds)[0]
        with torch.no_grad():
            t = [torch.from_numpy(a) for a in (fused, aligned, level)]
            ref = net(t[0], t[1][None], t[2]).numpy()
        assert out.shape == (1, 3, *size), out.shape
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


def _onnx_meta(path: Path) -> dict[str, str]:
    m = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def export_temporal_model(
    net: TemporalDenoiser,
    *,
    init_onnx: Path,
    init_steps: int,
    training: dict,
    architecture: dict,
    out_dir: Path = MODELS_DIR,
    parity_pictures: np.ndarray | None = None,
) -> dict:
    """Write kwaflux-temporal.onnx (+ .fp16.onnx, + .json) for a deployed (folded) network that
    was started (TemporalDenoiser.from_fusion) from the single-frame model `init_onnx`, which
    must be the export of that model's step `init_steps`. The parity check runs on windows cut
    from `parity_pictures` (default: the held-out validation photos)."""
    from kwaflux_ofx.engine import align, temporal

    if not init_onnx.is_file():
        raise SystemExit(f"{init_onnx}: the single-frame model the temporal one started from")
    init_meta = _onnx_meta(init_onnx)
    if init_meta.get("kwaflux.training_steps") != str(init_steps):
        # The learned path replaces exactly this denoiser; recording another one's hash would
        # let the engine run the model beside a denoiser it never started from.
        raise SystemExit(
            f"{init_onnx}: is step {init_meta.get('kwaflux.training_steps')} of the single-frame "
            f"model, but the temporal model started from step {init_steps}; export that "
            "denoiser too (--only denoise --only temporal) or name it with --init-onnx"
        )
    max_noise = init_meta["kwaflux.max_noise"]
    path = out_dir / f"{TEMPORAL_NAME}.onnx"
    # How far an output pixel depends on the input: the network's reach around the fused and
    # aligned frames, which themselves reach the fusion's box and the alignment's search.
    reach = net.receptive_field + temporal.FUSION_RADIUS + align.MARGIN
    meta = {
        "kind": "temporal-denoise",
        "frames": str(net.frames),
        "order": "0,-2,-1,1,2",
        "scale": "1",
        "channels": "3",
        "range": "0-1",
        "noise_input": "sigma",
        "max_noise": max_noise,
        "receptive_field": str(reach),
        "net_receptive_field": str(net.receptive_field),
        "alignment": str(math.lcm(2, align.BLOCK)),
        "name": TEMPORAL_NAME,
        "description": (
            f"Kwaflux temporal denoiser: the shipped alignment and fusion of {net.frames} frames, "
            f"then a {net.convs}-conv x {architecture.get('channels', '?')} ch network reading "
            "the fused frame, the aligned frames and the fusion's noise level left"
        ),
        "license": "Apache-2.0",
        "training_data": training_data_summary(),
        "training_steps": str(training["steps"]),
        "training_hours": f"{training['hours']:.2f}",
        "training_seed": str(training.get("seed", "")),
        "init_name": INIT_NAME,
        "init_steps": str(init_steps),
        "init_sha256": hashlib.sha256(init_onnx.read_bytes()).hexdigest(),
    }

    def save(model: onnx.ModelProto, target: Path) -> None:
        for k, v in meta.items():
            model.metadata_props.add(key=f"kwaflux.{k}", value=v)
        model.producer_name = "kwaflux python/export.py"
        onnx.checker.check_model(model)
        onnx.save(model, str(target))

    save(temporal_graph(net), path)
    parity = temporal_parity(net, path, parity_pictures)
    path16 = out_dir / f"{TEMPORAL_NAME}.fp16.onnx"
    save(temporal_graph(net, half=True), path16)
    try:
        fp16_err: float | str = temporal_parity(net, path16, parity_pictures)
    except Exception as exc:  # CPU builds may lack fp16 kernels; the GPU path is the target
        fp16_err = f"not run on CPU: {type(exc).__name__}"
    info = {
        **file_facts(path, path16),
        "fp16": "the network in fp16; inputs, alignment and fusion fp32",
        "parameters": sum(p.numel() for p in net.parameters()),
        "metadata": {f"kwaflux.{k}": v for k, v in meta.items()},
        "architecture": architecture,
        "training": training,
        "init": {"file": init_onnx.name, "steps": init_steps, "sha256": meta["init_sha256"]},
        "parity_fp32_max_abs": parity,
        "parity_sizes": [list(s) for s in TEMPORAL_PARITY_SIZES],
        "fp16_vs_torch_max_abs": fp16_err,
    }
    (out_dir / f"{TEMPORAL_NAME}.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("%s: %d bytes, parity %.2e, fp16 %s", path.name, info["bytes"], parity, fp16_err)
    if parity > PARITY_TOLERANCE:
        raise SystemExit(f"{path.name}: onnxruntime differs from torch by {parity:.2e}")
    return info


def export_temporal(init_onnx: Path | None = None, out_dir: Path = MODELS_DIR) -> dict:
    """The temporal checkpoint (its EMA weights, folded) through export_temporal_model; the
    single-frame model it started from is the built-in one in `out_dir` unless named."""
    ck = load_checkpoint(TEMPORAL_RUN)
    cfg = ck["config"]
    net = TemporalDenoiser(cfg["channels"], cfg["convs"], rep=cfg.get("rep", False),
                           frames=cfg["frames"])  # fmt: skip
    net.load_state_dict(ck["ema"] if "ema" in ck else ck["model"])
    net = deploy(net).eval()
    training = training_facts(ck)
    return export_temporal_model(
        net,
        init_onnx=init_onnx or out_dir / f"{INIT_NAME}.onnx",
        init_steps=int(cfg["init"]["step"]),
        training=training,
        architecture=cfg,
        out_dir=out_dir,
    )


def training_facts(ck: dict) -> dict:
    """What a sidecar says of the checkpoint a model was exported from."""
    return {
        "steps": ck["step"],
        "hours": round(ck.get("elapsed", 0.0) / 3600, 3),
        "hours_planned": ck.get("hours_planned"),
        "device": ck.get("device", "cpu"),
        "seed": ck["seed"],
        "validation": ck.get("metrics", {}),
    }


def file_facts(path: Path, path16: Path) -> dict:
    """What a sidecar says of the files themselves: names, sha256, sizes, opset."""
    return {
        "file": path.name,
        "fp16_file": path16.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "bytes": path.stat().st_size,
        "fp16_bytes": path16.stat().st_size,
        "opset": OPSET,
    }


DOCS = paths.MODELS_DOC


def steps_cell(tr: dict) -> str:
    """Training steps, with hours trained of those planned where the sidecar records them
    (models exported before the hour-based schedule record steps of a planned step count)."""
    if tr.get("hours") is not None and tr.get("hours_planned") is not None:
        return f"{tr['steps']} ({tr['hours']} of {tr['hours_planned']} h)"
    if tr.get("steps_planned") is not None:
        return f"{tr['steps']} of {tr['steps_planned']}"
    return str(tr["steps"])


def write_docs_table() -> None:
    """Replace the export section of docs/models.md with the figures in the .json sidecars."""
    rows = []
    for name in ("kwaflux-denoise", "kwaflux-sr-x2", "kwaflux-sr-x4"):
        side = MODELS_DIR / f"{name}.json"
        if not side.exists():
            continue
        info = json.loads(side.read_text())
        tr = info["training"]
        val = ", ".join(f"{k} {v}" for k, v in tr["validation"].items())
        fp16 = info["fp16_vs_torch_max_abs"]
        fp16 = f"{fp16:.1e}" if isinstance(fp16, float) else fp16
        rows.append(
            f"| `{info['file']}` | {info['parameters']:,} | {info['bytes'] / 1e6:.2f} MB / "
            f"{info['fp16_bytes'] / 1e6:.2f} MB | {info['parity_fp32_max_abs']:.1e} | {fp16} | "
            f"{steps_cell(tr)} | {val} |"
        )
    table = "\n".join(
        [
            "| model | parameters | size fp32 / fp16 | ORT vs torch, fp32 max abs | "
            "fp16 (ORT CPU) vs torch fp32 | training steps | validation PSNR (dB) at export |",
            "|---|---:|---|---:|---:|---|---|",
            *rows,
            "",
            "_Written by `python -m kwaflux_lab.train.export`; parity is measured on random inputs of sizes "
            "67x45, 128x96 and 5x9 (odd sizes on purpose)._",
        ]
    )
    docsection.write_section(DOCS, "export", table, "## Export checks")


CURVE_KEYS = {
    "sr-x2": ("val_psnr",),
    "sr-x4": ("val_psnr",),
    "denoise": ("awgn25_out", "awgn5_out", "jpeg30_out", "flat25_shift"),
    "temporal": ("t25_fusion", "t25_out", "t15_fusion", "t15_out"),
}


def write_curve() -> None:
    """Validation PSNR against training hours, from python/checkpoints/NAME.log.jsonl (one record
    per checkpoint, written by the trainers), into docs/models.md between the curve markers."""
    lines = [
        "Validation PSNR (dB, held-out crops, the EMA weights) against training hours on the "
        "device named, from `python/checkpoints/*.log.jsonl`; written by "
        "`python -m kwaflux_lab.train.export --curve`. `flat25_shift` is the level shift of flat bright greys "
        "under clipped sigma-25 noise (8-bit levels, lower is better); `temporal` is the learned "
        "multi-frame model beside the shipped fusion on the same synthetic windows.",
    ]
    for run, keys in CURVE_KEYS.items():
        log_path = checkpoint_path(run).with_suffix(".log.jsonl")
        if not log_path.exists():
            continue
        records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
        # At most ~12 rows per model: every record is kept in the log, the table samples it.
        step = max(1, len(records) // 12)
        picked = records[::step]
        if picked[-1] is not records[-1]:
            picked.append(records[-1])
        lines += ["", f"`{run}`:", "", "| hours | step | device | " + " | ".join(keys) + " |"]
        lines.append("|---:|---:|---|" + "---:|" * len(keys))
        for r in picked:
            vals = " | ".join(f"{r[k]:.2f}" if k in r else "" for k in keys)  # newer keys
            lines.append(f"| {r['hours']:.2f} | {r['step']} | {r.get('device', 'cpu')} | {vals} |")
        lines += last_hour(records, keys)
    docsection.write_section(DOCS, "curve", "\n".join(lines), "## Training curve")


def last_hour(records: list[dict], keys: tuple[str, ...]) -> list[str]:
    """The change of each figure over the last training hour: what more hours of the same
    training can still buy, the figure that says whether a goal is out of reach."""
    end = records[-1]
    before = [r for r in records if r["hours"] <= end["hours"] - 1.0]
    if not before:
        return []
    start = before[-1]
    moved = ", ".join(f"{k} {end[k] - start[k]:+.2f}" for k in keys if k in end and k in start)
    return ["", f"Over the last hour ({start['hours']:.2f} to {end['hours']:.2f} h): {moved}."]


RUNS = {"sr-x2": "kwaflux-sr-x2", "sr-x4": "kwaflux-sr-x4", "denoise": "kwaflux-denoise"}
DETAIL_RUNS = {"sr-x2-detail": "kwaflux-sr-x2-detail", "sr-x4-detail": "kwaflux-sr-x4-detail"}


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("--only", choices=(*RUNS, *DETAIL_RUNS, "temporal"), action="append")
    ap.add_argument("--curve", action="store_true", help="only write the training curve to docs")
    ap.add_argument(
        "--suffix",
        default="",
        help=f"export the runs of this suffix (e.g. {V2_SUFFIX}: sr-x2{V2_SUFFIX}.pt becomes "
        "kwaflux-sr-x2.onnx)",
    )
    ap.add_argument(
        "--init-onnx",
        type=Path,
        default=None,
        help="temporal: the single-frame model it started from (default: the built-in one)",
    )
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=MODELS_DIR,
        help="where models go (docs only for the default)",
    )
    args = ap.parse_args()
    if args.curve:
        write_curve()
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    # A candidate folder for eval (--out-dir /tmp/candidates/x) need not exist yet.
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for run, name in RUNS.items():
        if args.only and run not in args.only:
            continue
        if not checkpoint_path(run + args.suffix).exists():
            log.warning("no checkpoint for %s yet; skipped", run + args.suffix)
            continue
        export_one(run + args.suffix, name, args.out_dir)
    # The detail looks (train/detail.py) only when asked for: a plain export stays as it was.
    for run in args.only or ():
        if run in DETAIL_RUNS:
            export_one(run, DETAIL_RUNS[run], args.out_dir)
    # After the denoiser: exported together, the temporal model records the new one's hash.
    if (not args.only or "temporal" in args.only) and checkpoint_path(TEMPORAL_RUN).exists():
        try:
            export_temporal(args.init_onnx, args.out_dir)
        except SystemExit as exc:
            if args.only:
                raise
            log.warning("temporal model not exported: %s", exc)
    # docs/models.md describes the other models; the temporal export alone leaves it alone.
    if args.out_dir == MODELS_DIR and (not args.only or set(args.only) & set(RUNS)):
        write_docs_table()
        write_curve()


if __name__ == "__main__":
    main()
