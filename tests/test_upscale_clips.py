"""`kwaflux upscale` on clips: a real AVI into a MOV with every frame in place and audio kept,
parts of clips, batches, image sequences, auto denoise in the report, preview by timecode."""

from __future__ import annotations

import json

import pytest

from kwaflux_ofx.cli import build_parser, main
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import probe
from tests.support.media import make_sequence, make_video, read_index
from tests.support.onnx_models import noise_denoiser, sr_model

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


@pytest.fixture(scope="module")
def mdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    sr_model(d / "sr2.onnx", 2)
    noise_denoiser(d / "dn.onnx", meta={"noise_level": "rms"})
    noise_denoiser(d / "uncalibrated.onnx")
    return d


def indices(path) -> list[int]:
    info = probe(path)
    return [read_index(f) for _, f in read_frames(info, 0, info.frames)]


def xvid_avi(tmp_path, frames=30):
    from tests.test_media_decode import ffmpeg

    src = make_video(tmp_path / "src.mkv", frames, rate=25, codec="ffv1", size=(128, 96))
    out = tmp_path / "in.avi"
    ffmpeg("-i", str(src), "-f", "lavfi", "-i", "sine=r=48000", "-t", str(frames / 25),
           "-c:v", "mpeg4", "-vtag", "XVID", "-bf", "2", "-q:v", "2", "-c:a", "ac3", str(out))  # fmt: skip
    return out


def test_avi_in_mov_out_every_frame_in_place_audio_kept(tmp_path, mdir):
    src = xvid_avi(tmp_path)
    out = tmp_path / "out.mov"
    report = tmp_path / "r.json"
    args = ["upscale", str(src), str(out), "--model", str(mdir / "sr2.onnx"), "-q"]
    assert main([*args, "--denoise-model", str(mdir / "dn.onnx"), "--report", str(report)]) == 0
    info = probe(out)
    assert (info.width, info.height, info.frames, info.has_audio) == (256, 192, 30, True)
    assert indices(out) == list(range(30))
    clip = json.loads(report.read_text())["clips"][0]
    assert clip["status"] == "done" and clip["auto_denoise"]["model"] == "dn"
    assert clip["denoise"] == pytest.approx(clip["auto_denoise"]["strength"], abs=1e-4)
    # a finished output is never replaced without --overwrite
    assert main(args) == 2


def test_scale_1_denoise_0_is_a_plain_transcode(tmp_path):
    """No model to run: every frame still lands in its place (the tile planner once failed on
    an empty model list here)."""
    src = make_video(tmp_path / "in.mp4", 12, rate=25, codec="libx264", size=(64, 48))
    out = tmp_path / "out.mov"
    assert main(["upscale", str(src), str(out), "--scale", "1", "--denoise", "0", "-q"]) == 0
    assert (probe(out).width, probe(out).height) == (64, 48)
    assert indices(out) == list(range(12))


def test_start_and_end_by_frame_and_timecode(tmp_path, mdir):
    src = make_video(tmp_path / "tc.mov", 40, rate=25, start_tc="01:00:00:00")
    model = ["--model", str(mdir / "sr2.onnx"), "--denoise", "0", "-q"]
    a = tmp_path / "a.mkv"
    assert main(["upscale", str(src), str(a), "--start", "5", "--end", "12", *model]) == 0
    assert indices(a) == list(range(5, 12))
    assert probe(a).start_tc == 90000 + 5
    b = tmp_path / "b.mp4"
    tc = ["--start", "01:00:01:00", "--end", "01:00:01:05"]
    assert main(["upscale", str(src), str(b), *tc, *model]) == 0
    assert indices(b) == list(range(25, 30))


def test_a_folder_of_clips_goes_to_an_output_folder(tmp_path, mdir):
    for name, n in (("one.mov", 4), ("two.mkv", 6)):
        make_video(tmp_path / "in" / name, n, codec="auto" if name.endswith("mkv") else "mjpeg")
    (tmp_path / "in" / "notes.txt").write_text("not a clip")
    out = tmp_path / "out"
    model = ["--model", str(mdir / "sr2.onnx"), "--denoise", "0", "-q"]
    assert main(["upscale", str(tmp_path / "in"), str(out), "--codec", "ffv1", *model]) == 0
    assert indices(out / "one.mkv") == list(range(4))
    assert indices(out / "two.mkv") == list(range(6))
    glob_out = tmp_path / "globbed"
    assert main(["upscale", str(tmp_path / "in" / "*.mov"), str(glob_out), *model]) == 0
    assert [p.name for p in glob_out.iterdir()] == ["one.mov"]


def test_image_sequence_in_and_out(tmp_path, mdir):
    make_sequence(tmp_path / "seq", "shot.", 1001, 5, ext=".png")
    out = tmp_path / "shot_x2"
    pattern = str(tmp_path / "seq" / "shot.####.png")
    model = ["--model", str(mdir / "sr2.onnx"), "--denoise", "0", "-q"]
    assert main(["upscale", pattern, str(out), "--codec", "png", *model]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 5
    assert indices(out / names[0]) == list(range(5))


def test_output_equal_to_input_is_refused(tmp_path, mdir, capsys):
    src = make_video(tmp_path / "same.mov", 3)
    assert main(["upscale", str(src), str(src), "--overwrite", "--denoise", "0"]) == 2
    assert "same.mov: output would overwrite the input" in capsys.readouterr().err


def test_uncalibrated_model_refuses_auto_in_one_line(tmp_path, mdir, capsys):
    src = make_video(tmp_path / "c.mov", 3)
    bad = ["--denoise-model", str(mdir / "uncalibrated.onnx"), "--model", str(mdir / "sr2.onnx")]
    assert main(["upscale", str(src), str(tmp_path / "o.mov"), *bad, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "uncalibrated.onnx" in err[0] and "auto" in err[0]


def test_preview_seeks_by_timecode(tmp_path, mdir):
    src = make_video(tmp_path / "p.mp4", 60, rate=25, codec="libx264", start_tc="10:00:00:00")
    out = tmp_path / "p.png"
    model = ["--model", str(mdir / "sr2.onnx"), "--denoise", "0", "-q"]
    assert main(["preview", str(src), str(out), "--at", "10:00:01:12", *model]) == 0
    from kwaflux_ofx.cli.process import read_video_frame

    assert read_index(read_video_frame(src, 0, at="10:00:01:12")) == 37  # 1 s 12 f at 25 fps
    assert read_index(read_video_frame(src, 51)) == 51


def test_cli_habits_version_examples_and_flags_after_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("kwaflux ")
    parser = build_parser()
    args = parser.parse_args(["upscale", "a.mov", "b.mov", "-q", "-v", "-v"])
    assert args.quiet and args.verbose == 2
    args = parser.parse_args(["-q", "upscale", "a.mov", "b.mov"])
    assert args.quiet
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("upscale", "preview"):
        assert "examples:\n  kwaflux " in sub.choices[name].format_help()


def test_json_progress_carries_fps_and_eta_and_resolve_shows_it(tmp_path, mdir, capsys):
    from kwaflux_ofx.hosts.resolve.roundtrip import print_progress

    src = make_video(tmp_path / "j.mov", 6)
    out = tmp_path / "j_x2.mov"
    model = ["--model", str(mdir / "sr2.onnx"), "--denoise-model", str(mdir / "dn.onnx")]
    assert main(["upscale", str(src), str(out), *model, "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "finish"
    assert any(e["event"] == "note" and "denoise" in e["text"] for e in events)
    frames = [e for e in events if e["event"] == "frames"]
    assert frames[-1]["done"] == frames[-1]["total"] == 6 and frames[-1]["eta"] == 0
    assert all(e["fps"] > 0 and e["job_eta"] is not None for e in frames)
    print_progress(events[0])
    print_progress({"event": "frames", "unit": 0, "done": 3, "job_fps": 2.0, "job_eta": 75})
    assert "50%, 2.0 fps, 1 min 15 s left" in capsys.readouterr().out


def test_zero_byte_and_audio_only_inputs_fail_in_one_line(tmp_path, capsys):
    import av

    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("pcm_s16le", rate=48000, layout="mono")
        frame = av.AudioFrame(format="s16", layout="mono", samples=480)
        frame.sample_rate, frame.pts = 48000, 0
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    for src, why in ((empty, "cannot read video"), (audio, "has no video stream")):
        out = tmp_path / f"{src.stem}_x2.mov"
        assert main(["upscale", str(src), str(out), "--denoise", "0", "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and src.name in err[0] and why in err[0]
        assert not out.exists()
