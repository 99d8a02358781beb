"""Delivery: every codec profile and container pairing writes a file PyAV reads back as asked;
--crf, --preset, --pix-fmt and -e reach the encoder; EXR/DPX headers say what was asked; audio,
subtitles, chapters, timecode, colour tags and HDR metadata survive; bad choices are one line."""

from __future__ import annotations

import fractions
import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from kwaflux_ofx import settings
from kwaflux_ofx.cli import main
from kwaflux_ofx.media.codecs import CODECS
from kwaflux_ofx.media.encode import VideoWriter
from kwaflux_ofx.media.join import join_segments
from kwaflux_ofx.media.probe import probe
from kwaflux_ofx.media.sched import Snapshot, demote_new_realtime, realtime_threads
from tests.support.media import make_nearest_x2, make_video

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
# Only root may put a thread on real-time priority, so only there can an encoder raise one.
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="real-time priority needs root"
)

# What PyAV reads back: decoder, profile, pixel format of the decoded frames (the ProRes decoder
# gives 4444 as 12-bit whatever was encoded).
PROFILES = {
    "prores_proxy": ("prores", "Proxy", "yuv422p10le"),
    "prores_lt": ("prores", "LT", "yuv422p10le"),
    "prores_422": ("prores", "Standard", "yuv422p10le"),
    "prores_422hq": ("prores", "HQ", "yuv422p10le"),
    "prores_4444": ("prores", "4444", "yuv444p12le"),
    "prores_4444xq": ("prores", "XQ", "yuv444p12le"),
    "dnxhr_lb": ("dnxhd", "DNXHR LB", "yuv422p"),
    "dnxhr_sq": ("dnxhd", "DNXHR SQ", "yuv422p"),
    "dnxhr_hq": ("dnxhd", "DNXHR HQ", "yuv422p"),
    "dnxhr_hqx": ("dnxhd", "DNXHR HQX", "yuv422p10le"),
    "dnxhr_444": ("dnxhd", "DNXHR 444", "yuv444p10le"),
    "h264": ("h264", "High", "yuv420p"),
    "h265": ("hevc", "Main", "yuv420p"),
    "av1": ("libdav1d", "Main", "yuv420p"),
    "ffv1": ("ffv1", None, "yuv444p"),
}
VIDEO_CODECS = [n for n, c in settings.CODECS.items() if not c.is_sequence]
RATE = 24


def ffmpeg(*args: str) -> None:
    from tests.test_media_decode import ffmpeg as run

    run(*args)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(make_nearest_x2(tmp_path_factory.mktemp("m") / "nearest_x2.onnx"))


def upscale(src, out, model, *extra) -> int:
    return main(["upscale", str(src), str(out), "--model", model, "--denoise", "0", "-q", *extra])


def source(tmp_path, name="src.mkv", frames=4, size=(32, 24), **kw) -> Path:
    return make_video(tmp_path / name, frames, rate=RATE, codec="ffv1", size=size, **kw)


def read_back(path) -> tuple[str, str | None, str, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return s.codec_context.name, s.codec_context.profile, frames[0].format.name, len(frames)


def test_every_codec_has_a_profile_here():
    assert set(PROFILES) == set(VIDEO_CODECS)


@pytest.mark.parametrize("codec", VIDEO_CODECS)
def test_every_profile_reads_back_as_asked(tmp_path, model, codec):
    # DNxHR takes nothing under 256x120: a 128x64 source doubled
    size = (128, 64) if codec.startswith("dnxhr") else (32, 24)
    src = source(tmp_path, size=size)
    out = tmp_path / f"out{settings.CODECS[codec].ext}"
    assert upscale(src, out, model, "--codec", codec) == 0
    assert read_back(out) == (*PROFILES[codec], 4)


def _pairings():
    return [(n, ext) for n in VIDEO_CODECS for ext in settings.CODECS[n].containers]


@pytest.mark.parametrize(("codec", "ext"), _pairings())
def test_every_allowed_container_writes_and_reads_back(tmp_path, codec, ext):
    """Two segments joined with audio and timecode, as a render writes them."""
    src = source(tmp_path, frames=16, audio=True)
    w, h = (256, 128) if codec.startswith("dnxhr") else (64, 48)
    parts = []
    rng = np.random.default_rng(0)
    for i in range(2):  # noise: long-GOP encoders reorder (B-frames), as on real footage
        part = tmp_path / f"part{i}{ext}"
        writer = VideoWriter(str(part), CODECS[codec], w, h, RATE, None, False)
        for _ in range(8):
            writer.write(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        writer.close()
        parts.append(str(part))
    out = tmp_path / f"joined{ext}"
    span = (str(src), 0.0, 16 / RATE)
    assert join_segments(parts, str(out), RATE, timecode="01:00:00:00", streams_from=span) == 16
    assert read_back(out) == (*PROFILES[codec], 16)
    info = probe(out)
    assert (info.frames, info.start_tc, info.has_audio) == (16, 3600 * RATE, True)


@needs_root
def test_an_av1_encode_leaves_no_thread_on_real_time_priority(tmp_path):
    """SVT-AV1 run as root raises its threads and the caller's to SCHED_FIFO 99; threads started
    afterwards inherit it, and onnxruntime's spinning workers then hung the suite."""
    assert realtime_threads() == set()
    out = tmp_path / "a.mkv"
    writer = VideoWriter(str(out), CODECS["av1"], 64, 48, RATE, None, False)
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        assert realtime_threads() == set()
    writer.close()
    assert realtime_threads() == set()
    seen = []
    later = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
    later.start()
    later.join()
    assert seen == [os.SCHED_OTHER]
    assert read_back(out)[-1] == 4


@needs_root
def test_a_caller_on_real_time_priority_on_purpose_is_left_alone():
    """Run under `chrt` on purpose, the threads an encoder starts keep the caller's policy."""
    ready, done = threading.Event(), threading.Event()
    tids = []

    def waiter():
        tids.append(threading.get_native_id())
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        ready.set()
        done.wait(10)

    t = threading.Thread(target=waiter)
    t.start()
    try:
        assert ready.wait(10)
        (tid,) = tids
        assert demote_new_realtime(Snapshot(frozenset(), caller=True), "x") == 0
        assert os.sched_getscheduler(tid) == os.SCHED_FIFO
        assert demote_new_realtime(Snapshot(frozenset(), caller=False), "x") == 1
        assert os.sched_getscheduler(tid) == os.SCHED_OTHER
    finally:
        done.set()
        t.join()
    assert realtime_threads() == set()


def test_containers_that_do_not_work_are_refused_in_one_line(tmp_path, model, capsys):
    src = source(tmp_path)
    for codec, ext in (("dnxhr_hq", ".mkv"), ("av1", ".mov"), ("prores_lt", ".mp4")):
        assert upscale(src, tmp_path / f"o{ext}", model, "--codec", codec) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{codec} goes in" in err[0] and f"not '{ext}'" in err[0]


def noisy(k: int) -> np.ndarray:
    return np.random.default_rng(k).integers(0, 255, (24, 32, 3), dtype=np.uint8)


def test_crf_and_preset_reach_the_encoder(tmp_path, model):
    src = make_video(tmp_path / "n.mkv", 6, rate=RATE, codec="ffv1", size=(32, 24), frame_fn=noisy)
    sizes = {}
    for crf in (10, 40):
        out = tmp_path / f"crf{crf}.mp4"
        assert upscale(src, out, model, "--crf", str(crf), "--preset", "ultrafast") == 0
        sizes[crf] = out.stat().st_size
    assert sizes[10] > 2 * sizes[40]


def keyframes(path) -> list[int]:
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        packets.sort(key=lambda p: p.pts)
        return [i for i, p in enumerate(packets) if p.is_keyframe]


def test_encoder_options_are_passed_through(tmp_path, model):
    src = source(tmp_path, frames=30)
    plain, spaced = tmp_path / "plain.mp4", tmp_path / "keyint5.mp4"
    assert upscale(src, plain, model) == 0
    assert upscale(src, spaced, model, "-e", "x264-params=keyint=5:min-keyint=5") == 0
    # a render starts a keyframe every segment (12 frames here); keyint=5 adds the rest
    assert max(np.diff(keyframes(plain))) > 5
    assert max(np.diff(keyframes(spaced))) <= 5


def test_pix_fmt_is_the_one_asked_for(tmp_path, model):
    out = tmp_path / "o.mov"
    assert upscale(source(tmp_path), out, model, "--codec", "h264", "--pix-fmt", "yuv444p") == 0
    assert read_back(out)[1:3] == ("High 4:4:4 Predictive", "yuv444p")


def oiio_header(path) -> dict:
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    inp.close()
    return {
        "format": str(spec.format),
        "compression": spec.getattribute("compression"),
        "bits": spec.getattribute("oiio:BitsPerSample"),
    }


@pytest.mark.parametrize(
    ("codec", "extra", "want"),
    [
        ("exr", [], {"format": "half", "compression": "zip"}),
        ("exr", ["--compression", "piz"], {"format": "half", "compression": "piz"}),
        ("exr_float", ["--compression", "dwaa"], {"format": "float", "compression": "dwaa"}),
        ("dpx", [], {"format": "uint16", "bits": 10}),
    ],
)
def test_image_sequence_headers_say_what_was_asked(tmp_path, model, codec, extra, want):
    out = tmp_path / "seq"
    assert upscale(source(tmp_path), out, model, "--codec", codec, *extra) == 0
    frames = sorted(out.iterdir())
    assert len(frames) == 4
    header = oiio_header(frames[0])
    assert {k: header[k] for k in want} == want
    assert probe(frames[0]).width == 64


SRT = "1\n00:00:00,000 --> 00:00:00,500\nhello\n\n2\n00:00:00,600 --> 00:00:01,000\nworld\n"
CHAPTERS = (
    ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=One\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Two\n"
)


def rich_source(tmp_path, sub_codec="srt", ext=".mkv") -> Path:
    """One second: video, two audio streams, subtitles, two chapters, timecode 01:00:00:00."""
    video = source(tmp_path, "v.mkv", frames=RATE)
    (tmp_path / "s.srt").write_text(SRT)
    (tmp_path / "chapters.txt").write_text(CHAPTERS)
    out = tmp_path / f"rich{ext}"
    ffmpeg("-i", str(video), "-f", "lavfi", "-i", "sine=f=440:r=48000:d=1",
           "-f", "lavfi", "-i", "sine=f=880:r=48000:d=1", "-i", str(tmp_path / "s.srt"),
           "-i", str(tmp_path / "chapters.txt"), "-map", "0:v", "-map", "1:a", "-map", "2:a",
           "-map", "3:s", "-map_chapters", "4", "-c:v", "copy", "-c:a", "pcm_s16le",
           "-c:s", sub_codec, "-timecode", "01:00:00:00", str(out))  # fmt: skip
    return out


def streams_of(path) -> dict:
    with av.open(str(path)) as c:
        subs = c.streams.subtitles
        sub_times = []
        if subs:
            sub_times = [
                float(p.pts * p.time_base) for p in c.demux(subs[0]) if p.size and p.pts is not None
            ]
        return {
            "audio": len(c.streams.audio),
            "subtitles": [s.codec_context.name for s in subs],
            "sub_times": sub_times,
            "chapters": [
                (
                    round(float(ch["start"] * ch["time_base"]), 3),
                    round(float(ch["end"] * ch["time_base"]), 3),
                    ch["metadata"].get("title"),
                )
                for ch in c.chapters()
            ],
        }


def test_audio_subtitles_chapters_and_timecode_are_kept(tmp_path, model):
    src = rich_source(tmp_path)
    out = tmp_path / "out.mkv"
    assert upscale(src, out, model, "--start", "6") == 0  # from 0.25 s
    got = streams_of(out)
    assert got["audio"] == 2 and got["subtitles"] == ["srt"]
    assert got["sub_times"] == [pytest.approx(0.35, abs=0.01)]  # "world" at 0.6 s, shifted
    assert got["chapters"] == [(0.0, 0.25, "One"), (0.25, 0.75, "Two")]
    assert probe(out).start_tc == 3600 * RATE + 6
    assert upscale(src, tmp_path / "mute.mkv", model, "--no-audio") == 0
    mute = streams_of(tmp_path / "mute.mkv")
    assert mute["audio"] == 0 and mute["subtitles"] == ["srt"] and len(mute["chapters"]) == 2


def test_mov_text_subtitles_go_into_a_mov(tmp_path, model):
    src = rich_source(tmp_path, sub_codec="mov_text", ext=".mp4")
    out = tmp_path / "out.mov"
    assert upscale(src, out, model, "--codec", "h264") == 0
    got = streams_of(out)
    assert got["audio"] == 2 and got["subtitles"] == ["mov_text"]
    assert [c[2] for c in got["chapters"]] == ["One", "Two"]


def colour(path) -> tuple[int, int, int, int]:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range


def test_colour_tags_are_kept_and_colorspace_tags_an_untagged_source(tmp_path, model):
    tagged = make_video(tmp_path / "t.mp4", 3, rate=RATE, codec="libx264", color=True)
    assert upscale(tagged, tmp_path / "a.mkv", model, "--codec", "h265") == 0
    assert colour(tmp_path / "a.mkv") == (1, 1, 1, 1)
    # a source's own tags win over --colorspace
    assert upscale(tagged, tmp_path / "b.mov", model, "--colorspace", "bt2020-pq") == 0
    assert colour(tmp_path / "b.mov")[:3] == (1, 1, 1)
    plain = source(tmp_path)
    assert colour(plain)[:3] == (2, 2, 2)
    assert upscale(plain, tmp_path / "c.mov", model, "--colorspace", "bt2020-pq") == 0
    assert colour(tmp_path / "c.mov") == (9, 16, 9, 1)
    assert upscale(plain, tmp_path / "d.mp4", model, "--colorspace", "bt2020-hlg") == 0
    assert colour(tmp_path / "d.mp4")[:3] == (9, 18, 9)


def test_full_range_is_kept_where_the_codec_allows(tmp_path, model):
    video = source(tmp_path, frames=3)
    full = tmp_path / "full.mp4"
    tags = "colorprim=bt709:transfer=bt709:colormatrix=bt709:range=pc"
    ffmpeg("-i", str(video), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-color_range", "pc",
           "-x264-params", tags, str(full))  # fmt: skip
    assert colour(full) == (1, 1, 1, 2)
    assert upscale(full, tmp_path / "a.mp4", model) == 0
    assert colour(tmp_path / "a.mp4") == (1, 1, 1, 2)
    assert upscale(full, tmp_path / "p.mov", model) == 0  # ProRes is video range by definition
    assert colour(tmp_path / "p.mov") == (1, 1, 1, 1)


MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def hdr_of(path) -> dict:
    from kwaflux_ofx.media.hdr import read_hdr

    with av.open(str(path)) as c:
        return read_hdr(next(c.decode(video=0))) or {}


@pytest.mark.parametrize(("codec", "ext"), [("h265", ".mp4"), ("h264", ".mkv"), ("av1", ".mkv")])
def test_hdr10_metadata_is_kept(tmp_path, model, codec, ext):
    video = source(tmp_path, frames=3)
    hdr = tmp_path / "hdr.mp4"
    params = f"log-level=error:master-display={MASTER}:max-cll=1000,400"
    ffmpeg("-i", str(video), "-c:v", "libx265", "-pix_fmt", "yuv420p10le",
           "-x265-params", f"colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:{params}",
           str(hdr))  # fmt: skip
    want = hdr_of(hdr)
    assert want["light"] == (1000, 400)
    assert want["mastering"]["luminance"] == (0.0001, 1000.0)
    out = tmp_path / f"out{ext}"
    assert upscale(hdr, out, model, "--codec", codec) == 0
    got = hdr_of(out)
    assert got["light"] == want["light"]
    for key, value in want["mastering"].items():
        assert got["mastering"][key] == pytest.approx(value, abs=1e-4), key
    assert colour(out)[:3] == (9, 16, 9)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--codec", "h264", "--crf", "99"], "--crf for h264 must be from 0 to 51, not 99"),
        (
            ["--codec", "prores_lt", "--crf", "20"],
            "--crf applies to h264, h265, av1, not prores_lt",
        ),
        (["--codec", "h265", "--preset", "warp"], "--preset for h265 must be one of ultrafast"),
        (["--codec", "h264", "--pix-fmt", "rgb48le"], "--pix-fmt rgb48le: libx264 (h264) takes"),
        (["--codec", "h264", "-e", "bogus=1"], "-e bogus: libx264 (h264) has no such option"),
        (["--codec", "ffv1", "--compression", "piz"], "--compression applies to exr, exr_float"),
        (["--codec", "exr", "--crf", "10"], "--crf applies to video codecs, not to exr images"),
    ],
)
def test_bad_choices_are_one_line_and_exit_2(tmp_path, model, capsys, argv, message):
    codec = argv[1]
    out = tmp_path / f"o{settings.CODECS[codec].ext if codec != 'exr' else ''}"
    assert upscale(source(tmp_path), out, model, *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv", [["-e", "novalue"], ["--colorspace", "bt2100"], ["--container", "avi"]]
)
def test_malformed_options_are_refused_by_the_parser(tmp_path, model, capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        upscale(source(tmp_path), tmp_path / "o.mov", model, *argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("kwaflux upscale: error:")


def test_an_encoder_this_pyav_lacks_is_one_line(tmp_path, model, capsys, monkeypatch):
    monkeypatch.setattr(av, "codecs_available", av.codecs_available - {"libsvtav1"})
    assert upscale(source(tmp_path), tmp_path / "o.mp4", model, "--codec", "av1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kwaflux: error: --codec av1: this PyAV build has no libsvtav1 encoder "
        "(nor libaom-av1 or librav1e)"
    ]


def test_mxf_at_23_976(tmp_path):
    # MXF takes only the broadcast rates; 24000/1001 survives a writer and a join exactly
    rate = 24000 / 1001
    part = tmp_path / "p.mxf"
    writer = VideoWriter(str(part), CODECS["dnxhr_lb"], 256, 128, rate, None, False)
    for _ in range(3):
        writer.write(np.zeros((128, 256, 3), np.uint8))
    writer.close()
    assert join_segments([str(part)], str(tmp_path / "j.mxf"), rate, timecode="00:59:59:00") == 3
    info = probe(tmp_path / "j.mxf")
    assert fractions.Fraction(info.rate).limit_denominator(1001) == fractions.Fraction(24000, 1001)
    assert (info.frames, info.start_tc) == (3, 3599 * 24)
