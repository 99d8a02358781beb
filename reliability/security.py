"""Campaign: hostile names and paths; nothing is written outside the media folder, nothing runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from reliability.cases import Case, run_cli, tree_state
from reliability.media_files import conform_argv, nearest_model

# -- 2. security -------------------------------------------------------------------------------
HOSTILE_NAMES = [
    "$(touch pwned)",
    "`touch pwned`",
    "a;touch pwned",
    "x|touch pwned&",
    "..",
    "...",
    "-rf",
    " lead space",
    ".hidden",
    "日本語 クリップ",
    "a" * 200,
    "new\nline",
    "back\\slash",
    "percent%2F..%2F..%2Fescape",
]


def _outside_everything(root: Path) -> list[str]:
    """Files named like the shell payload anywhere they could land."""
    places = [root, Path.cwd(), Path("/tmp")]
    return [str(p / "pwned") for p in places if (p / "pwned").exists()]


def campaign_security(work: Path) -> list[Case]:
    """Hostile names and paths in a timeline, symlinks planted in the output folder: every write
    lands inside --media-dir, no shell ever runs a name, nothing outside changes."""
    import opentimelineio as otio

    from tests.support.media import make_video

    work.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    src, media_dir, outside = work / "src", work / "media", work / "outside"
    for d in (src, media_dir, outside):
        d.mkdir(exist_ok=True)
    model = nearest_model(work / "models")
    good = make_video(src / "good.mkv", 6, codec="ffv1")
    media: dict[str, tuple[Path, str]] = {}
    for i, name in enumerate(HOSTILE_NAMES):
        p = src / f"{name}.mkv"
        try:
            shutil.copyfile(good, p)
        except OSError:  # a name this filesystem refuses (too long with the suffix...)
            continue
        media[f"hostile name {i} {name[:20]!r}"] = (p, "done")
    # Paths the timeline spells with '..' and doubled separators: resolve, read, write inside.
    dotted = src / ".." / "src" / "." / "good.mkv"
    media["'..' in the media path"] = (Path(str(dotted)), "done")
    # A reference to a file outside the project that is not media (absolute path).
    victim = outside / "victim.mov"
    victim.write_bytes(b"precious, not media\n")
    media["absolute path to a non-media file"] = (victim, "fail")
    # Symlinks planted in the output folder where outputs and temp files will go.
    planted_file = outside / "planted-target.mkv"
    planted_file.write_bytes(b"must stay as it is\n")
    # exactly what the good.mkv unit would produce (4 frames, 128x72): must not pass as done
    good_out = make_video(outside / "complete.mkv", 4, codec="ffv1", size=(128, 72))
    os.symlink(planted_file, media_dir / ".good.kwaflux-partial.mkv")
    os.symlink(good_out, media_dir / "good.mkv")  # a complete-looking output, outside
    tl_path = work / "hostile.otio"
    tl = otio.schema.Timeline(name="$(touch pwned)")
    track = otio.schema.Track(name="`touch pwned`", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for name, (p, _) in media.items():
        track.append(
            otio.schema.Clip(
                name=name,
                media_reference=otio.schema.ExternalReference(target_url=str(p)),
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, 24), otio.opentime.RationalTime(4, 24)
                ),
                metadata={"cmd": "$(touch pwned)"},
            )
        )
    otio.adapters.write_to_file(tl, str(tl_path))
    before_src, before_out = tree_state(src), tree_state(outside)
    out = work / "out.otio"
    cwd = os.getcwd()
    os.chdir(work)  # a payload that ran would drop 'pwned' here
    try:
        run = run_cli(conform_argv(tl_path, out, media_dir, model), timeout=300)
    finally:
        os.chdir(cwd)
    if failed := run.failed_outright("security", "hostile timeline"):
        return failed
    report = json.loads(out.with_suffix(".json").read_text())
    real_media = os.path.realpath(media_dir)
    for c in report["clips"]:
        want = media[c["name"]][1]
        outp = c["output"]
        if want == "done":
            inside = outp and os.path.realpath(outp).startswith(real_media + os.sep)
            regular = outp and os.path.isfile(outp) and not os.path.islink(outp)
            if c["status"] == "done" and inside and regular:
                cases.append(
                    Case(
                        "security", c["name"], "accepted", f"-> {os.path.relpath(outp, media_dir)}"
                    )
                )
            else:
                cases.append(
                    Case(
                        "security",
                        c["name"],
                        "WRONG",
                        f"{c['status']} {c['reason']} -> {outp} inside={inside} "
                        f"regular file={regular}",
                    )
                )
        else:
            ok = c["status"] in ("failed", "missing") and victim.name in c["reason"]
            cases.append(
                Case(
                    "security",
                    c["name"],
                    "clip failed" if ok else "WRONG",
                    c["reason"] or c["status"],
                )
            )
    for p in media_dir.rglob("*"):
        if p.is_symlink():
            cases.append(
                Case(
                    "security",
                    f"planted link {p.name}",
                    "WRONG",
                    "still a link after the conform (kept as an output?)",
                )
            )
        if not os.path.realpath(p).startswith(real_media + os.sep):
            cases.append(Case("security", f"output {p.name}", "WRONG", "resolves outside"))
    if tree_state(outside) != before_out:
        cases.append(Case("security", "files outside --media-dir", "DAMAGE", "changed"))
    else:
        cases.append(
            Case(
                "security",
                "planted symlinks (temp name, output name)",
                "accepted",
                "their targets unchanged; real files written in their place",
            )
        )
    if tree_state(src) != before_src:
        cases.append(Case("security", "sources", "DAMAGE", "changed"))
    pwned = _outside_everything(work) + [str(p) for p in work.rglob("pwned")]
    cases.append(
        Case(
            "security",
            "shell payloads in names, metadata, timeline and track names",
            "DAMAGE" if pwned else "accepted",
            f"executed: {pwned}" if pwned else "no payload ran",
        )
    )
    return cases
