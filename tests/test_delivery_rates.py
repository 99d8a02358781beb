"""MXF takes only the frame rates its muxer knows: a clip at another rate is refused in one line
naming the file, its rate and the rates MXF takes, before anything renders (upscale and
conform); a rate it takes (29.97) is written."""

from __future__ import annotations

import pytest

from kwaflux_ofx.cli import main
from kwaflux_ofx.media.probe import probe
from tests.support.conform import clip, timeline
from tests.support.media import make_video
from tests.test_delivery import model
from tests.test_delivery_conform import conform

__all__ = ["model"]  # the fixture, shared

TAKES = "MXF takes 23.976, 24, 25, 29.97, 30, 47.952, 48, 50, 59.94, 60,"


@pytest.mark.parametrize("rate", [12, 15])
def test_upscale_to_mxf_at_a_rate_mxf_refuses_is_one_line(tmp_path, model, capsys, rate):
    src = make_video(tmp_path / "slow.mov", 3, rate=rate)
    out = tmp_path / "slow_x2.mxf"
    args = ["upscale", str(src), str(out), "--model", model, "--denoise", "0", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"kwaflux: error: {src}: is {rate} fps, which MXF cannot hold")
    assert TAKES in err[0] and "returned 22" not in err[0]
    assert list(tmp_path.iterdir()) == [src]  # nothing rendered, nothing partial


def test_conform_to_mxf_refuses_the_rate_before_rendering(tmp_path, model, capsys):
    src = make_video(tmp_path / "src" / "slow.mov", 8, rate=15)
    tl = timeline(tmp_path / "in.otio", clip("a", src.as_uri(), 0, 4, rate=15))
    media = tmp_path / "media"
    assert conform(tl, tmp_path / "o.otio", media, model, "--container", "mxf") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{src}: is 15 fps, which MXF cannot hold" in err[0]
    assert not media.exists() and not (tmp_path / "o.otio").exists()


def test_a_rate_mxf_takes_is_written(tmp_path, model):
    src = make_video(tmp_path / "ntsc.mov", 3, rate=30000 / 1001)
    out = tmp_path / "ntsc_x2.mxf"
    assert main(["upscale", str(src), str(out), "--model", model, "--denoise", "0", "-q"]) == 0
    info = probe(out)
    assert (info.frames, round(info.rate, 3)) == (3, 29.97)
