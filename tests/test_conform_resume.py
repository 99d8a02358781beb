"""Conform safety: kill -9 and rerun, Ctrl-C, safe output names, never writing next to sources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import opentimelineio as otio
import pytest

from kwaflux_ofx.conform import run_conform
from kwaflux_ofx.errors import KwafluxError
from tests.support.conform import clip, conform, timeline
from tests.support.media import decode_indices, make_nearest_x2, make_video, tree_checksums


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_nearest_x2(tmp_path_factory.mktemp("model") / "nearest_x2.onnx"))


def popen(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "kwaflux_ofx.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def wait_for_frames(proc, unit, at_least):
    """Read JSON progress until `unit` has rendered `at_least` frames (and is not finished)."""
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["event"] == "frames" and ev["unit"] == unit and at_least <= ev["done"] < ev["total"]:
            return ev
        if ev["event"] == "unit_done" and ev["unit"] == unit or time.monotonic() > deadline:
            break
    raise AssertionError("the conform finished before it could be interrupted")


def make_job(tmp_path, long_frames=600):
    src = tmp_path / "src"
    make_video(src / "short.mov", 30, 24, "01:00:00:00")
    make_video(src / "long.mov", long_frames, 24, "02:00:00:00", size=(192, 108))
    tl = timeline(
        tmp_path / "in.otio",
        clip("short", "file:///elsewhere/short.mov", 86400 + 5, 20),
        clip("long", "file:///elsewhere/long.mov", 172800, long_frames),
    )
    args = [
        tl,
        "-o",
        tmp_path / "out.otio",
        "--media-dir",
        tmp_path / "media",
        "--search-path",
        src,
        "--codec",
        "prores_422hq",
        "--handles",
        "2",
        "--report",
        tmp_path / "report.json",
    ]
    return src, args


def test_kill9_then_rerun_finishes(tmp_path, model):
    src, args = make_job(tmp_path)
    before = tree_checksums(src)
    proc = popen("conform", *args, "--model", model, "--progress", "json")
    try:
        wait_for_frames(proc, unit=1, at_least=20)
        parts = tmp_path / "media" / ".long.kwaflux-partial.mov.parts"
        assert parts.is_dir()  # mid-write: the unfinished output's segments, under a temp name
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "media" / "long.mov").exists()
    assert (tmp_path / "media" / "short.mov").exists()  # finished before the kill
    assert not (tmp_path / "out.otio").exists()
    short_mtime = (tmp_path / "media" / "short.mov").stat().st_mtime_ns

    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "kwaflux_ofx.cli",
            "conform",
            *map(str, args),
            "--model",
            model,
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    by_name = {c["name"]: c for c in report["clips"]}
    assert by_name["short"]["status"] == "done"
    assert "already complete" in by_name["short"]["reason"]  # skipped, not redone
    assert (tmp_path / "media" / "short.mov").stat().st_mtime_ns == short_mtime
    assert by_name["long"]["status"] == "done" and by_name["long"]["reason"] == ""
    idx, size, tc = decode_indices(tmp_path / "media" / "long.mov")
    assert idx == list(range(600)) and size == (384, 216) and tc == "02:00:00:00"
    idx, size, tc = decode_indices(tmp_path / "media" / "short.mov")
    assert idx == list(range(3, 27)) and tc == "01:00:00:03"
    assert sorted(os.listdir(tmp_path / "media")) == ["long.mov", "short.mov"]  # no temp left
    assert tree_checksums(src) == before


def test_ctrl_c_stops_cleanly(tmp_path, model):
    src, args = make_job(tmp_path)
    proc = popen("conform", *args, "--model", model, "--progress", "json")
    try:
        wait_for_frames(proc, unit=1, at_least=10)
        # Frozen before the Ctrl-C, so a reader that lags behind the progress lines (a loaded
        # test process) cannot send it to a job that has meanwhile finished.
        proc.send_signal(signal.SIGSTOP)
        assert proc.poll() is None, "the conform finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "kwaflux: interrupted"
    assert "Traceback" not in err
    # the finished output stays; of the unfinished one only its finished segments (kept for a
    # rerun to resume from), never a partial segment; no timeline written
    media = sorted(os.listdir(tmp_path / "media"))
    assert media in (["short.mov"], [".long.kwaflux-partial.mov.parts", "short.mov"])
    if len(media) == 2:
        kept = os.listdir(tmp_path / "media" / media[0])
        assert all(n == "fingerprint" or n[0].isdigit() for n in kept), kept
    assert not (tmp_path / "out.otio").exists()


def test_output_names_cannot_escape_media_dir(tmp_path, model):
    src = tmp_path / "src"
    make_video(src / "x.mov", 10, 24)
    make_video(src / "..weird name; $(rm).mov", 10, 24)
    tl = timeline(
        tmp_path / "in.otio",
        clip("../../x", None, 0, 5),  # an EDL-style clip name, relinked by name
        clip("odd", "file:///far/away/..weird%20name;%20$(rm).mov", 0, 5),
    )
    media = tmp_path / "deep" / "media"
    report = conform(tl, tmp_path, media=media, model=model)
    assert report["summary"]["done"] == 2
    outputs = sorted(os.listdir(media))
    assert outputs == ["weird_name_rm.mkv", "x.mkv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "in.otio", "o.otio", "src"]


def test_refuses_to_write_next_to_sources(tmp_path, model):
    src = tmp_path / "src"
    make_video(src / "a.mov", 10, 24)
    tl = timeline(tmp_path / "in.otio", clip("a", "a.mov", 0, 5))
    before = tree_checksums(src)
    with pytest.raises(KwafluxError, match="also a --search-path"):
        run_conform(tl, tmp_path / "o.otio", src, search_paths=[src], model=model)
    direct = timeline(tmp_path / "direct.otio", clip("a", str(src / "a.mov"), 0, 5))
    with pytest.raises(KwafluxError, match="folder of the source media"):
        run_conform(direct, tmp_path / "o.otio", src, model=model)
    with pytest.raises(KwafluxError, match="overwrite the input timeline"):
        run_conform(tl, tl, tmp_path / "m", search_paths=[src], model=model)
    assert tree_checksums(src) == before


def test_bad_model_is_one_clear_error_before_any_work(tmp_path):
    src = tmp_path / "src"
    make_video(src / "a.mov", 10, 24)
    tl = timeline(tmp_path / "in.otio", clip("a", "a.mov", 0, 5))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "kwaflux_ofx.cli",
            "conform",
            str(tl),
            "-o",
            str(tmp_path / "o.otio"),
            "--media-dir",
            str(tmp_path / "m"),
            "--search-path",
            str(src),
            "--model",
            str(tmp_path / "nope.onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"kwaflux: error: {tmp_path / 'nope.onnx'}: model file not found"
    ]
    assert not (tmp_path / "m").exists()


def test_rerun_with_other_settings_redoes_the_output(tmp_path, model):
    src = tmp_path / "src"
    make_video(src / "a.mov", 20, 24)
    tl = timeline(tmp_path / "in.otio", clip("a", "a.mov", 2, 10))
    first = conform(tl, tmp_path, model=model, handles=1)
    assert first["clips"][0]["reason"] == ""
    again = conform(tl, tmp_path, model=model, handles=1, overwrite=True)
    assert "already complete" in again["clips"][0]["reason"]
    # same size and length, other model: the old output must not be kept
    other = tmp_path / "other_x2.onnx"
    other.write_bytes(open(model, "rb").read())
    redo = conform(tl, tmp_path, model=str(other), handles=1, overwrite=True)
    assert redo["clips"][0]["status"] == "done" and redo["clips"][0]["reason"] == ""
    assert decode_indices(tmp_path / "m" / "a.mkv")[0] == list(range(1, 13))


def test_unwritable_output_format_fails_before_rendering(tmp_path, model):
    src = tmp_path / "src"
    make_video(src / "a.mov", 10, 24)
    tl = otio.schema.Timeline("two video tracks")
    for name in ("V1", "V2"):
        tr = otio.schema.Track(name=name)
        tr.append(clip(name, "a.mov", 0, 5))
        tl.tracks.append(tr)
    otio.adapters.write_to_file(tl, str(tmp_path / "in.otio"))
    with pytest.raises(KwafluxError, match="cannot write this timeline as .edl"):
        run_conform(
            tmp_path / "in.otio",
            tmp_path / "o.edl",
            tmp_path / "m",
            search_paths=[src],
            model=model,
        )
    assert not (tmp_path / "m").exists()


def test_earlier_outputs_are_never_taken_for_sources(tmp_path, model):
    """--media-dir inside a search path: a rerun must still find the real source."""
    make_video(tmp_path / "a.mov", 20, 24, "01:00:00:00")
    tl = timeline(tmp_path / "in.otio", clip("a", "file:///gone/a.mov", 86400 + 3, 5))
    kw = dict(media="out/media", search=tmp_path, codec="prores_422hq", model=model)
    conform(tl, tmp_path, **kw)
    (tmp_path / "a.mov").rename(tmp_path / "moved.mov")  # the source is gone now
    again = conform(tl, tmp_path, out="o2.otio", **kw)
    assert again["clips"][0]["status"] == "missing"


def test_relative_media_paths_are_relative_to_the_timeline(tmp_path, model):
    make_video(tmp_path / "proj" / "footage" / "a.mov", 12, 24)
    tl = timeline(tmp_path / "proj" / "in.otio", clip("a", "footage/a.mov", 2, 4))
    rep = conform(tl, tmp_path, search=None, model=model)  # no search path needed
    assert rep["clips"][0]["status"] == "done"
    assert rep["clips"][0]["media"] == str(tmp_path / "proj" / "footage" / "a.mov")
    assert decode_indices(tmp_path / "m" / "a.mkv")[0] == [2, 3, 4, 5]
