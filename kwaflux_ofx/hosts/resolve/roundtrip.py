"""The Resolve round trip: export the current timeline, conform it, import media and timeline back.

This module runs inside DaVinci Resolve's own Python (the Workspace > Scripts menu), which has
none of our packages and may be as old as 3.6 (hence quoted annotations and no __future__
import). It uses only the standard library, and the menu script loads it by file path
(importing the `kwaflux_ofx` package would pull in numpy and onnxruntime). The conform itself
runs in the project's venv as `python -m kwaflux_ofx.cli conform ...`, a subprocess started
with an argument list, and reports progress as JSON lines on stdout.

Resolve's API answers failures with False or None rather than exceptions; every such answer
becomes a `RoundTripError` naming what failed.
"""

import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _load(name: str, *parts: str) -> Any:
    """One of our files by its path (Resolve's Python cannot import the package), once."""
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), *parts)
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


SETTINGS = _load("kwaflux_ofx_settings", os.pardir, os.pardir, "settings.py")
api = _load("kwaflux_resolve_api", "resolve_api.py")
RoundTripError = api.RoundTripError
DEFAULT_SETTINGS = {
    "scale": SETTINGS.DEFAULT_SCALE,
    "denoise": SETTINGS.DENOISE_MIN,
    "codec": SETTINGS.DEFAULT_CODEC,
    "media_dir": None,
}


CONFIG_NAME = "resolve.json"


# The names run() gives new timelines: "<source> (Kwaflux x2 dn0.30 prores_422hq)[ N]".
_CONFORMED_NAME = re.compile(r"\(Kwaflux x\d dn\d\.\d\d \w+\)( \d+)?$")


# -- settings remembered between runs -----------------------------------------------------------
def config_dir() -> str:
    """$KWAFLUX_CONFIG_DIR, else $XDG_CONFIG_HOME/kwaflux, else ~/.config/kwaflux."""
    env = os.environ.get("KWAFLUX_CONFIG_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "kwaflux")


def config_path() -> str:
    return os.path.join(config_dir(), CONFIG_NAME)


def load_config() -> dict:
    """The saved config ({"python": ..., "settings": {...}}); {} when absent or unreadable."""
    try:
        with open(config_path(), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: ignored, cannot read it: %s", config_path(), exc)
        return {}
    return data if isinstance(data, dict) else {}


def save_config(data: dict) -> None:
    """Write the config atomically, so a crash never leaves half a file."""
    path = config_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def load_settings() -> dict:
    """The settings of the last run (scale, denoise, codec, media_dir), checked, with defaults."""
    saved = load_config().get("settings") or {}
    out = dict(DEFAULT_SETTINGS)
    try:
        out.update(
            check_settings(
                saved.get("scale", out["scale"]),
                saved.get("denoise", out["denoise"]),
                saved.get("codec", out["codec"]),
            )
        )
    except RoundTripError as exc:
        log.warning("%s: saved settings ignored: %s", config_path(), exc)
    if isinstance(saved.get("media_dir"), str) and saved["media_dir"]:
        out["media_dir"] = saved["media_dir"]
    return out


def save_settings(settings: dict) -> None:
    data = load_config()
    data["settings"] = {k: settings.get(k, DEFAULT_SETTINGS[k]) for k in DEFAULT_SETTINGS}
    save_config(data)


def check_settings(scale: Any, denoise: Any, codec: Any) -> dict:
    try:
        return {
            "scale": SETTINGS.check_scale(scale),
            "denoise": SETTINGS.check_denoise(denoise, "denoise"),
            "codec": SETTINGS.check_codec(codec).name,
        }
    except ValueError as exc:
        raise RoundTripError(str(exc)) from None


# -- the venv's Python ----------------------------------------------------------------------------
def find_python(python: "str | None" = None) -> str:
    """The Python that has kwaflux installed: the argument, $KWAFLUX_PYTHON, the one recorded by
    `kwaflux resolve install`, or this interpreter when it is a plain Python (not Resolve)."""
    candidates = [
        ("argument", python),
        ("KWAFLUX_PYTHON", os.environ.get("KWAFLUX_PYTHON")),
        (config_path(), load_config().get("python")),
    ]
    for origin, cand in candidates:
        if cand:
            if not os.path.isfile(cand):
                raise RoundTripError(
                    f"the kwaflux Python from {origin} does not exist: {cand}; "
                    "run `kwaflux resolve install` again from your venv"
                )
            return cand
    if os.path.basename(sys.executable or "").lower().startswith("python"):
        return sys.executable
    raise RoundTripError(
        "cannot find the Python that has kwaflux installed: run "
        "`<venv>/bin/kwaflux resolve install`, or set KWAFLUX_PYTHON"
    )


def child_env() -> dict:
    """The environment for the conform: Resolve sets PYTHONHOME/PYTHONPATH for its own Python,
    and a venv Python of another version started with them fails to import its stdlib."""
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- names ----------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:80] or "timeline"


def settings_label(scale: int, denoise: float, codec: str) -> str:
    """'Kwaflux x2 dn0.30 prores_422hq': the bin name, and the suffix of the new timeline."""
    return f"Kwaflux x{scale} dn{denoise:.2f} {codec}"


def default_job_dir(project: str, timeline: str, label: str) -> str:
    """Where a job's files go when no media folder is given: one folder per project, timeline
    and settings, so a rerun with the same settings resumes the same job."""
    root = os.environ.get("KWAFLUX_CONFORM_DIR") or os.path.join(
        os.path.expanduser("~"), "Kwaflux Conform"
    )
    return os.path.join(root, _slug(project), _slug(f"{timeline} {label}"))


# -- the conform subprocess -----------------------------------------------------------------------
def _pace(event: dict) -> str:
    """', 3.2 fps, 4 min 10 s left' from a frames event (the whole job's pace), or ''."""
    fps, eta = event.get("job_fps"), event.get("job_eta")
    if not fps or eta is None:
        return ""
    minutes, seconds = divmod(int(eta), 60)
    left = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return f", {fps:.1f} fps, {left} left"


def print_progress(event: dict, _state: dict = {}) -> None:  # noqa: B006 - state between calls
    """Default progress sink: a line per 5% of frames, and one per finished output."""
    kind = event.get("event")
    if kind == "start":
        _state.update(total=max(1, int(event.get("frames", 0))), done={}, shown=-1)
        print(
            f"kwaflux: conforming {event.get('units', 0)} outputs, {event.get('frames', 0)} frames",
            flush=True,
        )
    elif kind == "frames" and "total" in _state:
        _state["done"][event.get("unit")] = int(event.get("done", 0))
        pct = int(100 * sum(_state["done"].values()) / _state["total"])
        if pct // 5 > _state["shown"]:
            _state["shown"] = pct // 5
            print(f"kwaflux: {pct}%{_pace(event)}", flush=True)
    elif kind == "note":
        print(f"kwaflux: {event.get('text', '')}", flush=True)
    elif kind == "unit_done":
        reason = f" ({event['reason']})" if event.get("reason") else ""
        print(f"kwaflux: {event.get('name')}: {event.get('status')}{reason}", flush=True)


def run_conform(
    python: str,
    timeline_path: str,
    out_timeline: str,
    media_dir: str,
    report_path: str,
    *,
    scale: int,
    denoise: float,
    codec: str,
    extra_args: "list[str] | None" = None,
    on_progress: "Callable[[dict], None] | None" = print_progress,
    log_path: "str | None" = None,
) -> dict:
    """Run `kwaflux conform` in the venv's Python, feed its JSON progress lines to `on_progress`,
    and return the report it wrote. Exit code 1 (some clips failed) still returns the report."""
    cmd = [
        python,
        "-m",
        "kwaflux_ofx.cli",
        "conform",
        timeline_path,
        "-o",
        out_timeline,
        "--media-dir",
        media_dir,
        "--scale",
        str(scale),
        "--denoise",
        repr(float(denoise)),
        "--codec",
        codec,
        "--report",
        report_path,
        "--progress",
        "json",
        "--overwrite",  # the job folder's own timeline, from an earlier run of these settings
        *(extra_args or []),
    ]
    log.info("running %s", subprocess.list2cmdline(cmd))
    if os.path.exists(report_path):
        os.remove(report_path)  # a stale report must never pass for this run's
    log_path = log_path or os.path.splitext(report_path)[0] + ".log"
    # stderr goes to a file: a pipe nobody reads would block the child when it fills.
    with open(log_path, "w", encoding="utf-8") as errf:
        try:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=errf, text=True, env=child_env(), bufsize=1
            )
        except OSError as exc:
            raise RoundTripError(f"cannot start {python}: {exc}") from exc
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    log.info("conform: %s", line)
                    continue
                if on_progress is not None and isinstance(event, dict):
                    on_progress(event)
        rc = proc.wait()
    if rc not in (0, 1) or not os.path.isfile(report_path):
        raise RoundTripError(f"kwaflux conform failed (exit {rc}): {_last_error(log_path)}")
    with open(report_path, encoding="utf-8") as f:
        return json.load(f)


def _last_error(log_path: str) -> str:
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["no message"])[-1] + f" (full log: {log_path})"


def run(
    resolve: Any,
    *,
    scale: int = 2,
    denoise: float = 0.0,
    codec: str = "prores_422hq",
    media_dir: "str | None" = None,
    python: "str | None" = None,
    on_progress: "Callable[[dict], None] | None" = print_progress,
    extra_args: "list[str] | None" = None,
) -> dict:
    """The round trip on Resolve's current timeline; returns the conform report with a
    "resolve" section (bin, timeline, resolution, offline clips, warnings).

    `resolve` is the scripting app object (the `resolve` global of a menu script). New media
    goes into `media_dir` (by default a folder per project/timeline/settings under
    ~/Kwaflux Conform), the timelines and report beside it.
    """
    settings = check_settings(scale, denoise, codec)
    scale, denoise, codec = settings["scale"], settings["denoise"], settings["codec"]
    python = find_python(python)
    if resolve is None:
        raise RoundTripError(
            "Resolve's scripting API is not available (the free DaVinci Resolve "
            "allows scripts only from its own Workspace > Scripts menu)"
        )
    pm = api.need(resolve.GetProjectManager(), "GetProjectManager()")
    project = api.need(pm.GetCurrentProject(), "GetCurrentProject() (is a project open?)")
    timeline = api.need(project.GetCurrentTimeline(), "GetCurrentTimeline() (is a timeline open?)")
    media_pool = api.need(project.GetMediaPool(), "GetMediaPool()")
    tl_name = timeline.GetName() or "Timeline"
    label = settings_label(scale, denoise, codec)
    if _CONFORMED_NAME.search(tl_name):
        # After a round trip the new timeline is the current one; running again on it would
        # upscale the upscaled media.
        raise RoundTripError(
            f"timeline {tl_name!r} is already a Kwaflux conform: open the "
            "source timeline (or rename this one to conform it again)"
        )

    if media_dir:
        job_dir = media_dir = os.path.abspath(os.path.expanduser(media_dir))
    else:
        job_dir = default_job_dir(project.GetName() or "Project", tl_name, label)
        media_dir = os.path.join(job_dir, "media")
    os.makedirs(media_dir, exist_ok=True)
    stem = _slug(tl_name)
    exported = os.path.join(job_dir, f"{stem}.resolve.otio")
    conformed = os.path.join(job_dir, f"{stem}.kwaflux.otio")
    report_path = os.path.join(job_dir, f"{stem}.report.json")

    # 1. Export: OTIO needs Resolve 18.5+; older ones lack the constant.
    export_otio = getattr(resolve, "EXPORT_OTIO", None)
    if export_otio is None:
        raise RoundTripError("this Resolve cannot export OpenTimelineIO (needs 18.5 or later)")
    if os.path.exists(exported):
        os.remove(exported)
    api.need(
        timeline.Export(exported, export_otio, getattr(resolve, "EXPORT_NONE", 0)),
        f"Timeline.Export({exported!r}, EXPORT_OTIO)",
    )
    if not os.path.isfile(exported):
        raise RoundTripError(f"Resolve: Timeline.Export reported success but wrote no {exported}")

    # 2. Conform in the venv.
    report = run_conform(
        python,
        exported,
        conformed,
        media_dir,
        report_path,
        scale=scale,
        denoise=denoise,
        codec=codec,
        extra_args=extra_args,
        on_progress=on_progress,
    )
    summary = report.get("summary", {})
    bad = [c for c in report.get("clips", []) if c.get("status") in ("failed", "missing")]
    if bad:
        first = bad[0]
        raise RoundTripError(
            f"conform: {summary.get('failed', 0)} clips failed, {summary.get('missing', 0)} "
            f"missing (first: {first.get('name')}: {first.get('reason')}); nothing imported. "
            f"Fix and run again: finished media is kept (report: {report_path})",
            report,
        )
    # a clip from a damaged source is rendered whole (broken frames held) and imported too
    done = [c for c in report.get("clips", []) if c.get("status") in ("done", "damaged")]
    outputs = sorted({c["output"] for c in done})

    # 3. Media first, into a bin named after the settings: a timeline imported before its media
    # links to nothing and its clips come in offline.
    root = api.need(media_pool.GetRootFolder(), "GetRootFolder()")
    bin_ = api.sub_folder(media_pool, root, label)
    api.need(media_pool.SetCurrentFolder(bin_), f"SetCurrentFolder({label!r})")
    already = {os.path.normpath(api.item_path(i)) for i in (bin_.GetClipList() or [])}
    want = [o for o in outputs if not any(api.same_media(p, o) for p in already)]
    imported: list[Any] = []
    if want:
        imported = media_pool.ImportMedia(api.media_items(want, SETTINGS.CODECS[codec])) or []
        got = [api.item_path(i) for i in imported]
        missing = [o for o in want if not any(api.same_media(p, o) for p in got)]
        if missing:
            raise RoundTripError(
                f"Resolve: ImportMedia did not import {len(missing)} of "
                f"{len(want)} files (first: {missing[0]})",
                report,
            )

    # 4. The timeline, linked to the bin's clips only (importSourceClips False).
    new_name = api.unique(f"{tl_name} ({label})", api.timeline_names(project))
    new_tl = media_pool.ImportTimelineFromFile(
        conformed,
        {
            "timelineName": new_name,
            "importSourceClips": False,
            "sourceClipsFolders": [bin_],
        },
    )
    if not new_tl:
        raise RoundTripError(f"Resolve: ImportTimelineFromFile({conformed!r}) failed", report)

    # 5. The new timeline at the upscaled size (its own settings, not the project's).
    warnings: list[str] = []
    width, height = api.timeline_size(timeline, project)
    size = [width * scale, height * scale] if width and height else None
    if size:
        ok = (
            new_tl.SetSetting("useCustomSettings", "1")
            and new_tl.SetSetting("timelineResolutionWidth", str(size[0]))
            and new_tl.SetSetting("timelineResolutionHeight", str(size[1]))
        )
        if not ok:
            warnings.append(
                f"could not set the timeline resolution to {size[0]}x{size[1]}: set "
                "it in Timeline > Timeline Settings"
            )
    else:
        warnings.append("the source timeline resolution is unknown; resolution left as is")
    if not project.SetCurrentTimeline(new_tl):
        warnings.append(f"could not make {new_name!r} the current timeline")

    offline = api.offline_clips(new_tl, outputs, len(done))
    if offline:
        warnings.append(
            f"{len(offline)} clips are not linked to the conformed media: " + ", ".join(offline[:5])
        )
    for w in warnings:
        log.warning("%s", w)
    report["resolve"] = {
        "bin": label,
        "timeline": new_name,
        "resolution": size,
        "exported": exported,
        "imported_media": len(imported),
        "offline": offline,
        "warnings": warnings,
    }
    return report


# -- the menu script's entry ----------------------------------------------------------------------
def menu_main(
    resolve: Any, python: "str | None" = None, ask: "Callable[[dict], dict | None] | None" = None
) -> int:
    """What Workspace > Scripts > Kwaflux Conform runs: settings (asked or remembered), the round
    trip, a summary on Resolve's console. Returns 0 on success, 1 on failure."""
    logging.basicConfig(level=logging.INFO, format="kwaflux: %(message)s")
    settings = load_settings()
    if ask is not None:
        chosen = ask(settings)
        if chosen is None:
            print("kwaflux: cancelled", flush=True)
            return 1
        settings.update(chosen)
    try:
        settings.update(check_settings(settings["scale"], settings["denoise"], settings["codec"]))
        save_settings(settings)
        t0 = time.monotonic()
        report = run(
            resolve,
            scale=settings["scale"],
            denoise=settings["denoise"],
            codec=settings["codec"],
            media_dir=settings.get("media_dir"),
            python=python,
        )
    except RoundTripError as exc:
        print(f"kwaflux: error: {exc}", flush=True)
        return 1
    r, s = report["resolve"], report["summary"]
    size = "x".join(map(str, r["resolution"])) if r["resolution"] else "unchanged"
    print(
        f"kwaflux: {s['done']} clips conformed, {s['skipped']} skipped in "
        f"{time.monotonic() - t0:.0f} s; timeline {r['timeline']!r} ({size}) in bin "
        f"{r['bin']!r}",
        flush=True,
    )
    for w in r["warnings"]:
        print(f"kwaflux: warning: {w}", flush=True)
    return 0
