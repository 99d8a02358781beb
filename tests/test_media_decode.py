"""Real files decode frame-exactly: every frame of AVI (packed and B-frames), MP4 with an edit
list, MKV starting late and VFR sources shows the index its source frame carried."""

from __future__ import annotations

import subprocess

import pytest

from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import probe
from kwaflux_ofx.media.timing import Timing, VfrMode
from tests.support.media import make_video, read_index

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

RATE = 25


def ffmpeg(*args: str) -> None:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def source(tmp_path, frames: int = 60, size=(160, 112)):
    """A lossless clip whose frame k shows k; ffmpeg makes the files under test from it."""
    return str(make_video(tmp_path / "src.mkv", frames, rate=RATE, codec="ffv1", size=size))


def indices(info, start: int = 0, stop: int | None = None) -> list[tuple[int, int]]:
    stop = info.frames if stop is None else stop
    return [(i, read_index(f)) for i, f in read_frames(info, start, stop)]


def test_xvid_avi_with_b_frames_and_ac3_at_an_odd_size(tmp_path):
    src = source(tmp_path, 50, size=(720, 528))
    out = str(tmp_path / "xvid.avi")
    ffmpeg("-i", src, "-f", "lavfi", "-i", "sine=r=48000", "-t", "2", "-c:v", "mpeg4",
           "-vtag", "XVID", "-bf", "2", "-q:v", "2", "-c:a", "ac3", out)  # fmt: skip
    info = probe(out)
    assert info.timing.timing is Timing.ORDER
    assert (info.width, info.height, info.frames, info.has_audio) == (720, 528, 50, True)
    assert indices(info) == [(k, k) for k in range(50)]


def test_h264_avi_whose_timestamps_are_scrambled(tmp_path):
    """B-frames in AVI: the derived timestamps read 1, 4, 3, 5, 2, ...; decoder order is right."""
    out = str(tmp_path / "h264.avi")
    ffmpeg("-i", source(tmp_path), "-c:v", "libx264", "-bf", "3", "-crf", "12", out)
    info = probe(out)
    assert indices(info) == [(k, k) for k in range(60)]
    assert indices(info, 37, 45) == [(k, k) for k in range(37, 45)]


def test_mp4_with_b_frames_and_an_edit_list(tmp_path):
    whole = str(tmp_path / "whole.mp4")
    ffmpeg("-i", source(tmp_path), "-c:v", "libx264", "-bf", "3", "-g", "25", "-crf", "12", whole)
    cut = str(tmp_path / "cut.mp4")
    ffmpeg("-ss", "0.6", "-i", whole, "-c", "copy", cut)  # starts mid-GOP: an edit list
    info = probe(cut)
    got = indices(info)
    first = got[0][1]
    assert first in (15, 16)  # 0.6 s at 25 fps
    assert got == [(k, first + k) for k in range(60 - first)]
    # a seek into the middle lands on the same frames
    assert indices(info, 30, 36) == [(k, first + k) for k in range(30, 36)]


def test_mkv_whose_first_timestamp_is_not_zero(tmp_path):
    out = str(tmp_path / "late.mkv")
    ffmpeg("-i", source(tmp_path), "-c:v", "libx264", "-bf", "2", "-crf", "12",
           "-output_ts_offset", "10", out)  # fmt: skip
    info = probe(out)
    assert info.timing.first_pts > 0
    assert indices(info) == [(k, k) for k in range(60)]
    assert indices(info, 50, 55) == [(k, k) for k in range(50, 55)]


def dropped(k: int) -> bool:
    return k % 5 == 2 or 30 <= k < 34


def test_variable_rate_is_reported_and_conformed_or_kept(tmp_path):
    out = str(tmp_path / "vfr.mp4")
    keep = "not(eq(mod(n,5),2))*not(between(n,30,33))"
    ffmpeg("-i", source(tmp_path), "-vf", f"select='{keep}'", "-fps_mode", "passthrough",
           "-c:v", "libx264", "-crf", "12", out)  # fmt: skip
    info = probe(out)
    assert info.timing.vfr
    # conformed to 25 fps: one frame per slot, a dropped frame's slot holds the one before
    assert info.frames == 60
    want = []
    for k in range(60):
        shown = k
        while dropped(shown):
            shown -= 1
        want.append((k, shown))
    assert indices(info) == want
    assert indices(info, 20, 40) == want[20:40]
    # kept: each decoded frame once, at its own time
    info.set_vfr_mode(VfrMode.KEEP)
    kept = [k for k in range(60) if not dropped(k)]
    assert info.frames == len(kept)
    assert indices(info) == list(enumerate(kept))
    assert info.timing.times[1] == pytest.approx(1 / RATE)


def test_interlaced_and_non_square_pixels_are_reported(tmp_path):
    out = str(tmp_path / "dv.mov")
    ffmpeg("-i", source(tmp_path, 10), "-vf", "setsar=16/15,setfield=tff", "-c:v", "mpeg2video",
           "-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-q:v", "2", out)  # fmt: skip
    info = probe(out)
    assert info.interlaced
    assert info.sample_aspect == (16, 15)
    assert indices(info) == [(k, k) for k in range(10)]


def test_non_square_pixels_are_kept_on_output(tmp_path):
    from kwaflux_ofx.media.codecs import CODECS
    from kwaflux_ofx.media.encode import VideoWriter
    from tests.support.media import index_frame

    out = str(tmp_path / "out.mov")
    w = VideoWriter(out, CODECS["prores_422hq"], 64, 36, 25.0, None, False, sample_aspect=(16, 15))
    for k in range(3):
        w.write(index_frame(k))
    w.close()
    info = probe(out)
    assert info.sample_aspect == (16, 15)
    assert indices(info) == [(k, k) for k in range(3)]


HELD = (0, 1, 2, 7, 8, 20, 21, 22, 23, 40, 41)  # the slots a change-only capture wrote


def held_frame_avi(path, codec: str = "mjpeg", rate: int = 15):
    """An AVI capture that wrote a picture only when it changed: its index holds one picture
    per changed slot (each showing its slot number), the slots between hold the one before."""
    import fractions

    import av

    from tests.support.media import index_frame

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = 64, 36, "yuvj420p"
        s.time_base = fractions.Fraction(1, rate)
        for n in HELD:
            f = av.VideoFrame.from_ndarray(index_frame(n, 64, 36), format="rgb24")
            f.pts = n
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


def _held_want() -> list[tuple[int, int]]:
    return [(k, max(n for n in HELD if n <= k)) for k in range(HELD[-1] + 1)]


def test_avi_with_held_frames_keeps_every_slot(tmp_path):
    info = probe(held_frame_avi(tmp_path / "held.avi"))
    assert info.timing.timing is Timing.ORDER and info.timing.vfr
    assert info.frames == HELD[-1] + 1  # the capture's length, not its 11 pictures
    assert indices(info) == _held_want()
    assert indices(info, 10, 25) == _held_want()[10:25]
    info.set_vfr_mode(VfrMode.KEEP)
    assert indices(info) == list(enumerate(HELD))


def test_upscaling_a_held_frame_capture_keeps_its_duration(tmp_path):
    from kwaflux_ofx.cli import main

    src = held_frame_avi(tmp_path / "held.avi")
    out = tmp_path / "out.mkv"
    argv = ["-q", "upscale", src, str(out), "--scale", "1", "--denoise", "0", "--codec", "ffv1"]
    assert main(argv) == 0
    got = probe(str(out))
    assert got.frames == HELD[-1] + 1 and got.rate == pytest.approx(15)
    assert [read_index(f) for _, f in read_frames(got, 0, got.frames)] == [
        n for _, n in _held_want()
    ]
