"""`kwaflux conform` takes the same delivery options as upscale, and replaces an existing output
timeline only with --overwrite, never leaving one half written."""

from __future__ import annotations

import opentimelineio as otio
import pytest

from kwaflux_ofx.cli import main
from kwaflux_ofx.conform.run import run_conform
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.media.probe import probe
from tests.test_conform_resume import clip, timeline
from tests.test_delivery import RATE, keyframes, model, read_back, rich_source, source, streams_of

__all__ = ["model"]  # the fixture, shared


def conform(tl, out, media, model, *extra) -> int:
    return main(
        ["-q", "conform", str(tl), "-o", str(out), "--media-dir", str(media), "--model", model]
        + ["--denoise", "0", "--handles", "0", *extra]
    )


def test_conform_takes_the_delivery_options(tmp_path, model):
    src = rich_source(tmp_path)  # 24 frames from 01:00:00:00, two audio streams, subtitles
    tl = timeline(tmp_path / "in.otio", clip("a", src.as_uri(), 3600 * RATE + 4, 16))
    out, media = tmp_path / "out.otio", tmp_path / "media"
    extra = ["--codec", "h265", "--container", "mkv", "--crf", "30", "--preset", "ultrafast"]
    assert conform(tl, out, media, model, *extra, "-e", "x265-params=keyint=4", "--no-audio") == 0
    new = media / "rich.mkv"
    assert read_back(new) == ("hevc", "Main", "yuv420p", 16)
    assert max(b - a for a, b in zip(keyframes(new)[:-1], keyframes(new)[1:], strict=True)) <= 4
    got = streams_of(new)
    assert got["audio"] == 0 and got["subtitles"] == ["srt"]
    assert probe(new).start_tc == 3600 * RATE + 4
    ref = otio.adapters.read_from_file(str(out)).find_clips()[0].media_reference
    assert ref.target_url.endswith("/media/rich.mkv")


def test_conform_refuses_a_bad_pairing_before_any_work(tmp_path, model, capsys):
    src = source(tmp_path, "a.mkv")
    tl = timeline(tmp_path / "in.otio", clip("a", src.as_uri(), 0, 4))
    media = tmp_path / "media"
    assert (
        conform(tl, tmp_path / "o.otio", media, model, "--codec", "dnxhr_hq", "--container", "mp4")
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kwaflux: error: dnxhr_hq goes in .mov, .mxf, not '.mp4'"]
    assert not media.exists() and not (tmp_path / "o.otio").exists()


def test_an_existing_timeline_is_replaced_only_with_overwrite(tmp_path, model, capsys):
    src = source(tmp_path, "a.mkv")
    tl = timeline(tmp_path / "in.otio", clip("a", src.as_uri(), 0, 4))
    out, media = tmp_path / "o.otio", tmp_path / "media"
    out.write_text("an earlier timeline")
    assert conform(tl, out, media, model, "--codec", "ffv1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kwaflux: error: {out}: exists already (pass --overwrite to replace it)"]
    assert out.read_text() == "an earlier timeline"
    assert not media.exists()  # refused before rendering anything
    assert conform(tl, out, media, model, "--codec", "ffv1", "--overwrite") == 0
    ref = otio.adapters.read_from_file(str(out)).find_clips()[0].media_reference
    assert ref.target_url.endswith("/media/a.mkv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv", "in.otio", "media", "o.otio"]


def test_a_failed_timeline_write_leaves_the_old_one_whole(tmp_path, model, monkeypatch):
    src = source(tmp_path, "a.mkv")
    tl = timeline(tmp_path / "in.otio", clip("a", src.as_uri(), 0, 4))
    out = tmp_path / "o.otio"
    out.write_text("an earlier timeline")

    def write_half(timeline, path, *args, **kwargs):
        with open(path, "w") as f:
            f.write('{"OTIO_SCHEMA": "Timeline.1", "tra')
        raise OSError("No space left on device")

    monkeypatch.setattr(otio.adapters, "write_to_file", write_half)
    with pytest.raises(KwafluxError, match="No space left on device"):
        run_conform(
            tl, out, tmp_path / "media", model=model, denoise=0, handles=0, codec="ffv1",
            overwrite=True,
        )  # fmt: skip
    assert out.read_text() == "an earlier timeline"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv", "in.otio", "media", "o.otio"]
