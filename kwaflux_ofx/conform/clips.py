"""One clip in, one clip out: `kwaflux upscale` on videos and image sequences, through conform's
pipeline (decode -> engine -> encode, auto denoise, progress, resume, report)."""

from __future__ import annotations

import glob
import os
import re
import time

from kwaflux_ofx import settings as rules
from kwaflux_ofx.conform.auto import resolve_auto
from kwaflux_ofx.conform.local import _run_local
from kwaflux_ofx.conform.plan import ConformSettings, WorkUnit
from kwaflux_ofx.conform.progress import Progress
from kwaflux_ofx.conform.report import _write_json, unit_strength
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.media.delivery import check_rate, check_times
from kwaflux_ofx.media.probe import MediaInfo, probe
from kwaflux_ofx.media.timecode import frames_to_timecode, timecode_to_frames
from kwaflux_ofx.media.timing import VfrMode

# Files a folder or glob of clips picks up (decoded with PyAV); anything else alone is a still.
VIDEO_SUFFIXES = frozenset({".mov", ".mp4", ".mkv", ".mxf", ".avi", ".m4v", ".webm", ".mts"})
# An image sequence named by a pattern: shot.####.exr or shot.%04d.exr
_PATTERN = re.compile(r"(#+|%0?(\d*)d)")


def is_clip_input(path: str) -> bool:
    """A video, a folder or glob of clips, or a sequence pattern (anything else is a still)."""
    return (
        os.path.isdir(path)
        or glob.has_magic(path)
        or bool(_PATTERN.search(os.path.basename(path)))
        or os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES
    )


def clip_inputs(path: str) -> list[str]:
    """The clips a folder or glob names, sorted; a single clip or pattern as itself."""
    if os.path.isdir(path):
        names = [os.path.join(path, n) for n in os.listdir(path)]
    elif glob.has_magic(path):
        names = glob.glob(path)
    else:
        return [_first_frame(path) if _PATTERN.search(os.path.basename(path)) else path]
    found = sorted(n for n in names if os.path.splitext(n)[1].lower() in VIDEO_SUFFIXES)
    if not found:
        raise KwafluxError("holds no video clips", path)
    return found


def _first_frame(pattern: str) -> str:
    """The first existing frame of a sequence pattern (probe finds the rest)."""
    d, name = os.path.split(pattern)
    regex = re.escape(name)
    regex = re.sub(r"(\\#)+|%0?\d*d", r"\\d+", regex)
    frames = sorted(n for n in os.listdir(d or ".") if re.fullmatch(regex, n))
    if not frames:
        raise KwafluxError("no frames match this sequence pattern", pattern)
    return os.path.join(d, frames[0])


def pick_codec(output: str, codec: str | None) -> str:
    """The codec for `output`: asked for (and allowed in that container), or the container's."""
    ext = os.path.splitext(output)[1].lower()
    if codec is None:
        if ext not in rules.CONTAINER_CODECS:
            raise KwafluxError(
                f"cannot tell the codec from {ext or 'no extension'!r}: use "
                f"{', '.join(rules.CONTAINER_CODECS)} or give --codec",
                output,
            )
        return rules.CONTAINER_CODECS[ext]
    spec = rules.CODECS[codec]
    if not spec.is_sequence:
        try:
            rules.check_container(spec, ext)
        except ValueError as exc:
            raise KwafluxError(str(exc), output) from None
    return codec


def position(text: str | None, info: MediaInfo, default: int) -> int:
    """A frame number (from 0) or a timecode (source timecode where the media has one)."""
    if text is None:
        return default
    if text.strip().isdigit():
        return int(text)
    try:
        tc = timecode_to_frames(text, info.rate)
    except ValueError:
        raise KwafluxError(
            f"{text!r} is neither a frame number nor a timecode", info.path
        ) from None
    if info.start_tc is not None and tc >= info.start_tc:
        return tc - info.start_tc
    return tc


def plan_clip(
    source: str,
    output: str,
    chosen: ConformSettings,
    *,
    uid: int = 0,
    start: str | None = None,
    end: str | None = None,
    vfr: VfrMode = VfrMode.CFR,
    overwrite: bool = False,
) -> WorkUnit:
    """The work unit that renders `source` (frames start..end) into `output`."""
    info = probe(source)
    info.set_vfr_mode(vfr)
    a, b = position(start, info, 0), position(end, info, info.frames)
    if not 0 <= a < b <= info.frames:
        raise KwafluxError(f"frames {a}..{b} are outside the clip (0..{info.frames})", source)
    real_out = os.path.realpath(output)
    if real_out in (os.path.realpath(source), os.path.realpath(info.seq_dir or source)):
        raise KwafluxError("output would overwrite the input", output)
    if os.path.lexists(output) and not overwrite:
        raise KwafluxError("exists already (pass --overwrite to replace it)", output)
    container = None if rules.CODECS[chosen.codec].is_sequence else os.path.splitext(output)[1]
    if container is not None:
        check_rate(container.lower(), info.rate, source)
    if info.keeps_times:
        check_times(container and container.lower(), source, output)
    return WorkUnit(
        id=uid,
        media=info,
        start=a,
        stop=b,
        origin=info.start_tc or 0,
        output=os.path.abspath(output),
        codec=chosen.codec,
        out_width=info.width * chosen.scale,
        out_height=info.height * chosen.scale,
        delivery=chosen.delivery,
    )


def describe(info: MediaInfo) -> str:
    """What the probe found that changes how a clip is read: said once per clip."""
    notes = []
    t = info.timing
    if t is not None and t.vfr:
        how = "conformed to" if info.vfr_mode is VfrMode.CFR else "timestamps kept, base"
        notes.append(f"variable frame rate ({how} {info.rate:g} fps)")
    if info.interlaced:
        notes.append("interlaced (rendered as whole frames)")
    if tuple(info.sample_aspect) != (1, 1):
        notes.append("non-square pixels {}:{} (kept)".format(*info.sample_aspect))
    return ", ".join(notes)


def run_clips(
    units: list[WorkUnit],
    chosen: ConformSettings,
    engine,
    progress: str = "bar",
    report_path: str | None = None,
) -> dict:
    """Render the units one after another; returns the report (also written as JSON)."""
    prog = Progress(progress, label="upscale")
    # A bad --model is one clear error before any work, not a failure per clip.
    engine.plan_for(
        (16, 16),
        scale=chosen.scale,
        denoise=1.0 if chosen.auto else chosen.denoise,
        sr_model=chosen.model,
        denoise_model=chosen.denoise_model,
    )
    for unit in units:
        note = describe(unit.media)
        if note:
            prog.note(f"{os.path.basename(unit.media.path)}: {note}", {"media": unit.media.path})
    t0 = time.perf_counter()
    prog.start(len(units), sum(u.frames for u in units))
    resolve_auto(units, chosen, engine, prog.note)
    results = _run_local(units, chosen, engine, prog)
    clips = []
    for u in units:
        res = results.get(u.id, {"status": "failed", "reason": "not rendered"})
        clips.append(
            {
                "input": u.media.path,
                "output": u.output,
                "status": res["status"],
                "reason": res.get("reason", ""),
                "frames": u.frames,
                "written": res.get("frames", 0),
                "resumed": res.get("resumed", 0),  # frames kept from an earlier, killed run
                "first": frames_to_timecode(u.start_tc, u.media.rate, u.media.drop_frame),
                "seconds": round(res.get("seconds", 0.0), 3),
                **unit_strength(u),
                # the source's broken frames, with timecodes and what stands in their place
                **({"damaged": res["damaged"]} if res.get("damaged") else {}),
            }
        )
    summary = {k: sum(1 for c in clips if c["status"] == k) for k in ("done", "damaged", "failed")}
    report = {
        "settings": chosen.as_dict(),
        "clips": clips,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    prog.finish(summary)
    if report_path:
        _write_json(report, report_path)
    return report


def print_clips(report: dict, stream) -> None:
    """One line per clip: where it went, how many frames, at what strength, or why it failed;
    a clip from a damaged source adds a line listing the broken frames with their timecodes."""
    for c in report["clips"]:
        if c["status"] in ("done", "damaged"):
            fps = c["frames"] / c["seconds"] if c["seconds"] else 0.0
            dn = f", denoise {c['denoise']:.2f}" if "denoise" in c else ""
            stream.write(f"{c['output']}: {c['frames']} frames{dn} ({fps:.1f} fps)\n")
            if c["status"] == "damaged":
                stream.write(f"damaged: {c['reason']}\n")  # the reason names the file
        else:
            stream.write(f"failed: {c['input']}: {c['reason']}\n")
