"""The conform report: the JSON document, the dry-run plan and the human summary."""

from __future__ import annotations

import json
import os

from kwaflux_ofx.conform.plan import (
    ConformPlan,
    ConformSettings,
)
from kwaflux_ofx.conform.progress import Progress
from kwaflux_ofx.media.timecode import frames_to_timecode


def _report(
    plan: ConformPlan,
    results: dict,
    settings: ConformSettings,
    out_path: str,
    media_dir: str,
    dry_run: bool,
) -> dict:
    units = {u.id: u for u in plan.units}
    clips = []
    for cp in plan.clips:
        status, reason, output = cp.status, cp.reason, ""
        strength: dict = {}
        res: dict = {}
        if cp.unit is not None:
            output = units[cp.unit].output
            strength = unit_strength(units[cp.unit])
            if dry_run:
                status, reason = "skipped", "dry run"
            else:
                res = results.get(cp.unit, {"status": "failed", "reason": "not rendered"})
                status = res["status"]
                # A clip whose source ran past its media keeps that note when it is done.
                reason = res.get("reason", "") or cp.reason
                if status == "damaged" and cp.reason:
                    reason = f"{cp.reason}; {reason}"
        clips.append(
            {
                "name": cp.name,
                "media": cp.media,
                "output": output,
                "status": status,
                "reason": reason,
                "frames": cp.frames,
                **strength,
                **(
                    {"damaged": res["damaged"]}
                    if cp.unit is not None and res.get("damaged")
                    else {}
                ),
            }
        )
    summary = {
        k: sum(1 for c in clips if c["status"] == k)
        for k in ("done", "damaged", "skipped", "missing", "failed")
    }
    return {
        "output_timeline": out_path,
        "media_dir": media_dir,
        "settings": settings.as_dict(),
        "clips": clips,
        "summary": summary,
    }


def unit_strength(unit) -> dict:
    """The denoise strength a unit rendered at, the measurement behind an auto one, and the
    colour space its pixels were read in."""
    out: dict = {} if unit.denoise is None else {"denoise": round(unit.denoise, 4)}
    out["colour_space"] = unit.colour.value
    if unit.auto is not None:
        out["auto_denoise"] = unit.auto
    return out


def _print_plan(plan: ConformPlan, settings: ConformSettings, prog: Progress) -> None:
    units = {u.id: u for u in plan.units}
    if prog.mode == "json":
        for u in plan.units:
            prog._emit(
                event="plan",
                unit=u.id,
                media=u.media.path,
                output=u.output,
                start=u.start,
                stop=u.stop,
                frames=u.frames,
                size=[u.out_width, u.out_height],
                clips=u.clips,
            )
        return
    print(
        f"{len(plan.clips)} video clips, {len(plan.units)} outputs, "
        f"{sum(u.frames for u in plan.units)} frames to render "
        f"(x{settings.scale}, denoise {settings.denoise}, {settings.codec})"
    )
    for cp in plan.clips:
        if cp.unit is not None:
            u = units[cp.unit]
            print(f"  {cp.name}: frames {cp.first}-{cp.last - 1} of {u.media.path}")
        else:
            print(f"  {cp.name}: {cp.status}: {cp.reason}")
    for u in plan.units:
        print(
            f"  -> {u.output}: {u.frames} frames ({u.start}-{u.stop - 1}, timecode "
            f"{frames_to_timecode(u.start_tc, u.media.rate, u.media.drop_frame)}), "
            f"{u.out_width}x{u.out_height}"
        )


def _write_json(report: dict, path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def print_report(report: dict, stream) -> None:
    """The human summary: counts, then each clip that was not done, with why."""
    s = report["summary"]
    stream.write(
        f"conform: {s['done']} done, {s.get('damaged', 0)} from damaged media, {s['skipped']} "
        f"skipped, {s['missing']} missing, {s['failed']} failed -> {report['output_timeline']}\n"
    )
    for c in report["clips"]:
        if c["status"] != "done":
            stream.write(f"  {c['status']}: {c['name']}: {c['reason']}\n")
        elif "strength" in c.get("auto_denoise", {}):
            a = c["auto_denoise"]
            stream.write(
                f"  {c['name']}: auto denoise {a['strength']:.2f} (noise "
                f"{a['noise_sigma_255']}/255, compression {a['compression_rms_255']}/255)\n"
            )
