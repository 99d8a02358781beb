"""The suite's own timelines, one per format an NLE exports, conform every clip."""

from __future__ import annotations

import pytest

from kwaflux_ofx.conform.timeline import read_timeline, video_clips
from kwaflux_ofx.media.probe import probe
from tests.support.conform import conform
from tests.support.media import TIMELINES, make_nearest_x2, stand_in_media


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_nearest_x2(tmp_path_factory.mktemp("model") / "nearest_x2.onnx"))


@pytest.mark.parametrize("name", ["cut.edl", "cut.otio", "cut.xml", "cut.fcpxml", "dissolve.edl"])
def test_own_timeline_conforms(tmp_path, model, name):
    src = TIMELINES / name
    stand_in_media(src, tmp_path / "src", margin=2)
    out = tmp_path / "out.otio"
    report = conform(
        src,
        tmp_path,
        out=out,
        media="media",
        model=model,
        handles=1,
        rate=24 if name.endswith(".edl") else None,
    )
    old_tl, new_tl = read_timeline(src, rate=24), read_timeline(out)  # clips need their parents
    old, new = video_clips(old_tl), video_clips(new_tl)
    assert report["summary"] == {
        "done": len(old),
        "damaged": 0,
        "skipped": 0,
        "missing": 0,
        "failed": 0,
    }
    assert [c.range_in_parent() for c in new] == [c.range_in_parent() for c in old]
    for clip in report["clips"]:
        assert (probe(clip["output"]).width, probe(clip["output"]).height) == (128, 72)
