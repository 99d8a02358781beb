"""Conform scale-out and wrappers: --jobs, a Dask LocalCluster, JSON progress, output formats."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import opentimelineio as otio
import pytest

from kwaflux_ofx.conform.timeline import read_timeline, video_clips
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import probe
from tests.support.conform import conform
from tests.support.media import TIMELINES, make_nearest_x2, stand_in_media

EDL = TIMELINES / "cut.edl"  # nine clips over five sources


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_nearest_x2(tmp_path_factory.mktemp("model") / "nearest_x2.onnx"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    stand_in_media(EDL, d, margin=4)
    return d


@pytest.fixture(scope="module")
def serial(tmp_path_factory, model, sources):
    out = tmp_path_factory.mktemp("serial")
    report = conform(EDL, out, search=sources, model=model, handles=1)
    assert report["summary"]["done"] == 9
    return report


def pixels(report) -> dict[str, list[np.ndarray]]:
    out = {}
    for c in report["clips"]:
        info = probe(c["output"])
        out[os.path.basename(c["output"])] = [f for _, f in read_frames(info, 0, info.frames)]
    return out


def assert_same_pixels(a, b):
    pa, pb = pixels(a), pixels(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert len(pa[name]) == len(pb[name])
        for x, y in zip(pa[name], pb[name], strict=True):
            np.testing.assert_array_equal(x, y)


def test_jobs_in_parallel_give_the_same_media(tmp_path, model, sources, serial):
    report = conform(EDL, tmp_path, search=sources, model=model, handles=1, jobs=3)
    assert report["summary"]["done"] == 9
    assert_same_pixels(serial, report)


def test_dask_local_cluster_two_workers(tmp_path, model, sources, serial):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        from kwaflux_ofx.conform import run as run_mod

        seen = []
        real = run_mod.Progress.unit_done

        def spy(self, unit_id, name, result):
            seen.append(result.get("worker"))
            return real(self, unit_id, name, result)

        run_mod.Progress.unit_done = spy
        stream = io.StringIO()
        try:
            report = conform(
                EDL,
                tmp_path,
                search=sources,
                model=model,
                handles=1,
                scheduler=cluster.scheduler_address,
                progress=run_mod.Progress("json", stream),
            )
        finally:
            run_mod.Progress.unit_done = real
        workers = set(cluster.scheduler_info["workers"])
    assert report["summary"]["done"] == 9
    # progress from the workers adds up to each unit's frames, never counted twice
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    totals = {e["unit"]: e["frames"] for e in events if e["event"] == "unit_start"}
    last = {e["unit"]: e["done"] for e in events if e["event"] == "frames"}
    assert last == totals and len(totals) == 9
    assert set(seen) == workers and len(workers) == 2  # both workers rendered units
    assert_same_pixels(serial, report)
    new = read_timeline(tmp_path / "o.otio")
    assert all(c.media_reference.target_url.endswith(".mkv") for c in video_clips(new))


def test_json_progress_lines_for_wrappers(tmp_path, model, sources):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "kwaflux_ofx.cli",
            "conform",
            str(EDL),
            "-o",
            str(tmp_path / "o.otio"),
            "--media-dir",
            str(tmp_path / "m"),
            "--search-path",
            str(sources),
            "--model",
            model,
            "--codec",
            "ffv1",
            "--handles",
            "0",
            "--progress",
            "json",
            "--report",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # every line is one object
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    starts = {e["unit"]: e["frames"] for e in events if e["event"] == "unit_start"}
    last = {}
    for e in events:
        if e["event"] == "frames":
            assert e["done"] >= last.get(e["unit"], 0)
            last[e["unit"]] = e["done"]
    assert last == starts  # every unit reported its final frame
    assert events[0]["frames"] == sum(starts.values())
    assert events[-1]["summary"] == json.loads((tmp_path / "r.json").read_text())["summary"]
    assert "9 done" in r.stderr  # the human summary stays off stdout


DISSOLVE = TIMELINES / "dissolve.edl"


@pytest.fixture(scope="module")
def dissolve_sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("dsrc")
    stand_in_media(DISSOLVE, d, margin=2)
    return d


@pytest.mark.parametrize("ext", [".edl", ".xml", ".otio"])
def test_output_timeline_formats(tmp_path, model, dissolve_sources, ext):
    out = tmp_path / f"new{ext}"
    report = conform(
        DISSOLVE, tmp_path, out=out, search=dissolve_sources, model=model, progress="none"
    )
    assert report["summary"]["done"] == 3
    new = read_timeline(out)
    old = read_timeline(DISSOLVE)
    assert [c.range_in_parent() for c in video_clips(new)] == [
        c.range_in_parent() for c in video_clips(old)
    ]
    assert [c.source_range for c in video_clips(new)] == [c.source_range for c in video_clips(old)]
    if ext == ".otio":
        stats = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "otiotool"),
                "-i",
                str(out),
                "--list-media",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stats.returncode == 0, stats.stderr
        assert stats.stdout.count(".mkv") >= 2
    else:
        urls = {
            otio.url_utils.filepath_from_url(c.media_reference.target_url)
            if c.media_reference.target_url.startswith("file:")
            else c.media_reference.target_url
            for c in video_clips(new)
        }
        assert {os.path.basename(u) for u in urls} == {
            os.path.basename(c["output"]) for c in report["clips"]
        }
