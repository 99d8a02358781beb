"""A unit that fails, even with an exception that has no message, fails alone: the others render."""

from __future__ import annotations

import pytest

from kwaflux_ofx.conform import cluster, render
from tests.support.conform import clip, conform, timeline
from tests.support.media import make_nearest_x2, make_video


@pytest.fixture
def job(tmp_path):
    src = tmp_path / "src"
    clips = []
    for name, hour in (("good", 1), ("bad", 2)):
        make_video(src / f"{name}.mov", 12, 24, f"0{hour}:00:00:00")
        clips.append(clip(name, (src / f"{name}.mov").as_uri(), 86400 * hour + 2, 8))
    timeline(tmp_path / "in.otio", *clips)
    model = make_nearest_x2(tmp_path / "nearest_x2.onnx")
    return tmp_path, str(model)


def _conform(tmp_path, model, **kw):
    return conform(
        tmp_path / "in.otio",
        tmp_path,
        out="out.otio",
        media="media",
        search=None,
        model=str(model),
        **kw,
    )


def _only_the_bad_unit_failed(report, reason):
    by_name = {c["name"]: c for c in report["clips"]}
    assert by_name["good"]["status"] == "done"
    assert by_name["bad"]["status"] == "failed" and by_name["bad"]["reason"] == reason


def test_writer_error_without_a_message_fails_that_unit(job, monkeypatch):
    tmp_path, model = job
    real = render._open_writer

    def open_writer(unit, *args, **kwargs):
        if "bad" in unit.output:
            raise OSError()  # str() is "": no first line to take
        return real(unit, *args, **kwargs)

    monkeypatch.setattr(render, "_open_writer", open_writer)
    _only_the_bad_unit_failed(_conform(tmp_path, model), "OSError")


def test_memory_error_in_a_dask_unit_fails_that_unit(job, monkeypatch):
    from distributed import LocalCluster

    tmp_path, model = job
    real = cluster.render_unit

    def render_unit(unit, *args, **kwargs):
        if "bad" in unit.output:
            raise MemoryError()
        return real(unit, *args, **kwargs)

    monkeypatch.setattr(cluster, "render_unit", render_unit)  # in-process workers see it
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as dask:
        report = _conform(tmp_path, model, scheduler=dask.scheduler_address)
    _only_the_bad_unit_failed(report, "MemoryError")
