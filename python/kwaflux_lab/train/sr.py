"""Train Kwaflux's x2 or x4 super-resolution model on photographs, and on frames of real
footage where --video-share asks for them."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from kwaflux_lab.sets import degrade, patches, real_video
from kwaflux_lab.train.common import (
    base_args,
    extra_validation,
    load_checkpoint,
    psnr,
    to_nchw,
    train,
)
from kwaflux_lab.train.nets import CompactSR


def validation_set(val: np.ndarray, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Low and high resolution NCHW tensors: plain bicubic-downscaled crops of held-out photos
    (the usual SR benchmark)."""
    val_hr = [v.astype(np.float32) / 255.0 for v in val]
    size = val.shape[1]
    val_lr = [
        degrade.from_pil(
            degrade.to_pil(hr).resize(
                (size // scale, size // scale), degrade.Image.Resampling.BICUBIC
            )
        )
        for hr in val_hr
    ]
    return to_nchw(val_lr), to_nchw(val_hr)


# The last frames of each real clip are held out of training and scored as decoded footage.
VIDEO_HELD_OUT = 0.2
VIDEO_VAL_SIDE = 96  # divisible by both scales
VIDEO_VAL_PER_CLIP = 3
# Footage for SR is shrunk half as much as the temporal model's clean targets: decoded video is
# softer than a photograph, and the photo-trained models sharpened it past what it holds (on the
# evaluation clips' frames they lost up to 1.1 dB to a shorter run). 120 frames a clip keep the
# 720p sources in memory.
FOOTAGE_SHRINK_DIVISOR = 2
FOOTAGE_FRAMES = 120


def held_out_start(n: int) -> int:
    """The first held-out frame of an n-frame clip: the last VIDEO_HELD_OUT of it is kept out."""
    return int(round(n * (1.0 - VIDEO_HELD_OUT)))


def split_video(clips: list[np.ndarray], side: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each clip cut in time: its first (1 - VIDEO_HELD_OUT) frames to train on, and
    VIDEO_VAL_PER_CLIP centre crops of `VIDEO_VAL_SIDE` spread over the rest to validate on.
    Clips smaller than `side` (the HR training patch) take no part."""
    train_parts, val = [], []
    for c in clips:
        n, h, w = c.shape[:3]
        cut = held_out_start(n)
        if min(h, w) < max(side, VIDEO_VAL_SIDE) or cut < 1 or cut >= n:
            continue
        train_parts.append(c[:cut])
        y, x = (h - VIDEO_VAL_SIDE) // 2, (w - VIDEO_VAL_SIDE) // 2
        for i in np.linspace(cut, n - 1, VIDEO_VAL_PER_CLIP).round().astype(int):
            val.append(c[i, y : y + VIDEO_VAL_SIDE, x : x + VIDEO_VAL_SIDE])
    return train_parts, val


def video_validation_set(val: list[np.ndarray], scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out footage crops area-averaged down by `scale` (how a shrunk frame is sampled), with
    their originals: what evaluate.py's video table measures, on clips it never sees."""
    hr = [v.astype(np.float32) / 255.0 for v in val]
    lr = [real_video.area_shrink(v, scale).astype(np.float32) / 255.0 for v in val]
    return to_nchw(lr), to_nchw(hr)


def scores(run, vlr: torch.Tensor, vhr: torch.Tensor, scale: int) -> dict[str, float]:
    """The validation figures of `run` (NCHW low-res tensor -> high-res tensor) and bicubic's."""
    bic = F.interpolate(vlr, scale_factor=scale, mode="bicubic", align_corners=False)
    return {"val_psnr": round(psnr(run(vlr), vhr), 3), "bicubic_psnr": round(psnr(bic, vhr), 3)}


def main() -> None:
    ap = base_args(__doc__)
    ap.add_argument("--scale", type=int, choices=(2, 4), required=True)
    ap.add_argument("--channels", type=int, default=40)
    ap.add_argument("--convs", type=int, default=10)
    ap.add_argument("--lr-patch", type=int, default=0, help="LR patch size (default 48 / 32)")
    ap.add_argument(
        "--video-share",
        type=float,
        default=0.0,
        help="share of each batch cut from real footage (sets/real_video.py) instead of photos",
    )
    ap.add_argument(
        "--photo-blur",
        type=float,
        default=degrade.SR_BLUR_SHARE,
        help="share of the photo samples blurred before the downscale",
    )
    ap.add_argument(
        "--footage-blur",
        type=float,
        default=degrade.SR_BLUR_SHARE,
        help="share of the footage samples blurred before the downscale: decoded video is "
        "soft already, and a network taught to undo blur on it over-sharpens what was not blurred",
    )
    ap.add_argument(
        "--init",
        default="",
        help="a new run starts from this checkpoint's weights (e.g. sr-x2-v2); its shape wins",
    )
    args = ap.parse_args()
    shares = {
        "--video-share": args.video_share,
        "--photo-blur": args.photo_blur,
        "--footage-blur": args.footage_blur,
    }
    for flag, value in shares.items():
        if not 0.0 <= value <= 1.0:
            ap.error(f"{flag} {value}: must be within 0..1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    scale = args.scale
    lr_patch = args.lr_patch or (48 if scale == 2 else 32)
    tiles, val = patches.load(args.patches or patches.DEFAULT_PATH)

    vlr, vhr = validation_set(val, scale)
    # Beside the old crops (the curve's val_psnr), crops of photos held out from every source.
    val2 = extra_validation(args.patches)
    v2 = validation_set(val2, scale) if val2 is not None else None
    footage, video_val = split_video(
        real_video.load_all(shrink_divisor=FOOTAGE_SHRINK_DIVISOR, max_frames=FOOTAGE_FRAMES),
        lr_patch * scale,
    )
    if args.video_share and not footage:
        raise SystemExit(
            "--video-share: no real clip installed (python -m kwaflux_lab.sets.real_video install)"
        )
    vv = video_validation_set(video_val, scale) if video_val else None
    # Frames drawn over all clips alike: a long clip holds more different pictures.
    frame_index = [(i, f) for i, c in enumerate(footage) for f in range(len(c))]

    def pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if args.video_share and rng.random() < args.video_share:
            i, f = frame_index[int(rng.integers(len(frame_index)))]
            return degrade.sr_pair(rng, footage[i][f], scale, lr_patch, args.footage_blur)
        return degrade.sr_pair(
            rng, tiles[rng.integers(len(tiles))], scale, lr_patch, args.photo_blur
        )

    def make_batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        pairs = [pair(rng) for _ in range(n)]
        return to_nchw([p[0] for p in pairs]), to_nchw([p[1] for p in pairs])

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        lr, hr = batch
        return F.l1_loss(model(lr), hr)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        def run(x: torch.Tensor) -> torch.Tensor:
            return model(x.to(next(model.parameters()).device)).cpu()

        out = scores(run, vlr, vhr, scale)
        if v2 is not None:
            out.update({f"v2_{k}": v for k, v in scores(run, *v2, scale).items()})
        if vv is not None:
            out.update({f"video_{k}": v for k, v in scores(run, *vv, scale).items()})
        return out

    channels, convs, rep = args.channels, args.convs, not args.no_rep
    start = None
    if args.init:
        start = load_checkpoint(args.init)
        cfg0 = start["config"]
        if cfg0.get("arch") != "CompactSR" or cfg0.get("scale") != scale:
            raise SystemExit(f"--init {args.init}: not a CompactSR x{scale} checkpoint ({cfg0})")
        channels, convs, rep = cfg0["channels"], cfg0["convs"], cfg0["rep"]
    model = CompactSR(scale, channels, convs, rep=rep)
    if start is not None:
        model.load_state_dict(start["ema"])
    config = {
        "arch": "CompactSR",
        "scale": scale,
        "channels": channels,
        "convs": convs,
        "rep": rep,
        "lr_patch": lr_patch,
    }
    # Only where used, so the checkpoints of runs before these options still resume.
    if args.video_share:
        config["video_share"] = args.video_share
    for key in ("photo_blur", "footage_blur"):
        if getattr(args, key) != degrade.SR_BLUR_SHARE:
            config[key] = getattr(args, key)
    if start is not None:
        config.update(init=args.init, init_step=start["step"])
    train(f"sr-x{scale}", model, config, args, make_batch, loss_fn, validate)


if __name__ == "__main__":
    main()
