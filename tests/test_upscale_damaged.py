"""Damaged clips through `kwaflux upscale`: a packet overwritten in the middle, a file cut at 60%
of its bytes. Every frame that decodes lands in its own place, a broken one is replaced by the
last good frame, the report and the console list the broken ones with their timecodes, the exit
code is 1, and no partial file is left behind (docs/upscale.md, *Damaged clips*)."""

from __future__ import annotations

import json
import os

import pytest

from kwaflux_ofx.cli import main
from kwaflux_ofx.media.damage import DECODED_WITH_ERRORS, PREDICTED, UNDECODABLE
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import probe
from tests.support.media import make_video, read_index
from tests.support.onnx_models import sr_model

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

RATE = 25
FRAMES = 40


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return sr_model(tmp_path_factory.mktemp("m") / "sr2.onnx", 2)


def encode(tmp_path, name: str, *args: str) -> str:
    """The lossless index clip re-encoded by the bundled ffmpeg (frame k shows k)."""
    from tests.test_media_decode import ffmpeg

    src = make_video(tmp_path / "src.mkv", FRAMES, rate=RATE, codec="ffv1", size=(128, 96))
    out = str(tmp_path / name)
    ffmpeg("-i", str(src), *args, "-timecode", "01:00:00:00", out)
    return out


def corrupt_packet(path: str, n: int) -> None:
    """Overwrite up to 64 bytes from the middle of video packet n (found by its byte offset)."""
    import av

    with av.open(path) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    pos, size = packets[n]
    data = bytearray(open(path, "rb").read())
    for i in range(pos + size // 2, pos + min(size, size // 2 + 64)):  # inside the packet
        data[i] = (data[i] * 7 + 13) & 0xFF
    open(path, "wb").write(bytes(data))


def cut(path: str, fraction: float = 0.6) -> None:
    """Keep the file's first bytes up to `fraction` of the way through its packets (an AVI's
    header alone is 5 kB, more than these small frames take)."""
    import av

    with av.open(path) as c:
        first = next(p.pos for p in c.demux(c.streams.video[0]) if p.size)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: first + int((len(data) - first) * fraction)])


def upscale(src: str, out, model, report) -> int:
    args = ["upscale", src, str(out), "--model", str(model), "--denoise", "0"]
    return main([*args, "--progress", "none", "--report", str(report)])


def shown(path) -> list[int]:
    info = probe(path)
    return [read_index(f) for _, f in read_frames(info, 0, info.frames)]


def broken_frames(clip: dict) -> dict[int, str]:
    return {
        k: r["problem"] for r in clip.get("damaged", []) for k in range(r["first"], r["last"] + 1)
    }


def check_output(out, clip: dict, present: int) -> None:
    """Every output frame shows its own source frame; one that could not be decoded, the last
    frame before it that was written (a frame predicted from it is written as decoded: its
    pixels are not checked)."""
    broken = broken_frames(clip)
    held = [k for k, why in broken.items() if why in (UNDECODABLE, DECODED_WITH_ERRORS)]
    want = []
    for k in range(present):
        stand_in = k
        while stand_in in held:
            stand_in -= 1
        want.append(stand_in)
    got = shown(out)
    assert len(got) == present
    assert [g for k, g in enumerate(got) if broken.get(k) != PREDICTED] == [
        w for k, w in enumerate(want) if broken.get(k) != PREDICTED
    ]
    assert sorted(os.listdir(os.path.dirname(out))) == [os.path.basename(out)]  # nothing partial


@pytest.mark.parametrize(
    ("name", "args", "problem"),
    [
        ("mjpeg.mov", ("-c:v", "mjpeg", "-q:v", "2"), "could not be decoded"),  # timestamps
        ("mjpeg.avi", ("-c:v", "mjpeg", "-q:v", "2"), "could not be decoded"),  # counted frames
        ("prores.mov", ("-c:v", "prores_ks"), "decoded with errors"),  # flagged by the decoder
    ],
)
def test_a_corrupt_packet_in_the_middle_costs_its_frame_only(
    tmp_path, model, capsys, name, args, problem
):
    src = encode(tmp_path, name, *args)
    corrupt_packet(src, 20)
    out = tmp_path / "out" / "clip_x2.mov"
    out.parent.mkdir()
    assert upscale(src, out, model, tmp_path / "r.json") == 1
    clip = json.loads((tmp_path / "r.json").read_text())["clips"][0]
    assert clip["status"] == "damaged"
    assert clip["damaged"] == [
        {
            "first": 20,
            "last": 20,
            "timecode": "01:00:00:20",
            "problem": problem,
            "rendered_as": "frame 19 repeated in its place",
        }
    ]
    check_output(out, clip, FRAMES)  # frame 20 shows 19; 21..39 are not shifted
    console = capsys.readouterr().out
    assert f"damaged: {src}: 1 damaged source frame: 20 (01:00:00:20) {problem}" in console


def test_a_long_gop_codec_holds_the_flagged_frame_and_lists_those_predicted_from_it(
    tmp_path, model
):
    """H.264 conceals a damaged packet and flags its frame: that frame is held; the frames after
    it up to the next keyframe (at most 12 on) are written as decoded and listed as predicted."""
    src = encode(tmp_path, "h264.mkv", "-c:v", "libx264", "-bf", "0", "-g", "12", "-crf", "12")
    corrupt_packet(src, 15)
    out = tmp_path / "out" / "clip_x2.mov"
    out.parent.mkdir()
    assert upscale(src, out, model, tmp_path / "r.json") == 1
    clip = json.loads((tmp_path / "r.json").read_text())["clips"][0]
    broken = broken_frames(clip)
    flagged = [k for k, why in broken.items() if why != PREDICTED]
    predicted = [k for k, why in broken.items() if why == PREDICTED]
    import av

    with av.open(src) as c:  # no B-frames: packets come in display order
        keys = [k for k, p in enumerate(c.demux(c.streams.video[0])) if p.size and p.is_keyframe]
    next_key = min(k for k in keys if k > 15)
    assert flagged and min(flagged) == 15 and max(broken) < next_key <= 24
    assert predicted == list(range(max(flagged) + 1, next_key))
    check_output(out, clip, FRAMES)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("xvid.avi", ("-c:v", "mpeg4", "-vtag", "XVID", "-bf", "2", "-q:v", "2")),
        ("h264.mkv", ("-c:v", "libx264", "-bf", "2", "-g", "12", "-crf", "12")),
    ],
)
def test_a_file_cut_at_60_percent_renders_what_is_there(tmp_path, model, capsys, name, args):
    src = encode(tmp_path, name, *args)
    cut(src)
    present = probe(src).frames
    assert 10 < present < FRAMES * 0.8
    out = tmp_path / "out" / "clip_x2.mov"
    out.parent.mkdir()
    assert upscale(src, out, model, tmp_path / "r.json") == 1
    clip = json.loads((tmp_path / "r.json").read_text())["clips"][0]
    assert clip["status"] == "damaged" and clip["frames"] == present
    tail = clip["damaged"][-1]
    assert (tail["first"], tail["last"]) == (present, FRAMES - 1)
    assert tail["problem"] == "missing: the file is cut short"
    assert tail["timecode"] == f"01:00:{present // RATE:02d}:{present % RATE:02d}-01:00:01:14"
    # the packet the cut went through, if any, is held; nothing else is touched
    assert all(k >= present - 3 for k in broken_frames(clip))
    check_output(out, clip, present)
    assert f"{present}-{FRAMES - 1} (01:00:" in capsys.readouterr().out


def test_a_mov_cut_short_has_no_index_and_fails_in_one_line(tmp_path, model, capsys):
    src = encode(tmp_path, "prores.mov", "-c:v", "prores_ks")
    cut(src)
    out = tmp_path / "out.mov"
    assert upscale(src, out, model, tmp_path / "r.json") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"kwaflux: error: {src}: cannot read video: the file is"
    )
    assert "cut short" in err[0] and not out.exists()


def test_preview_of_a_damaged_frame_says_so(tmp_path, model, capsys):
    src = encode(tmp_path, "mjpeg.mov", "-c:v", "mjpeg", "-q:v", "2")
    corrupt_packet(src, 20)
    png = tmp_path / "p.png"
    args = ["preview", src, str(png), "--frame", "20", "--model", str(model), "--denoise", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{src}: frame 20 is damaged: it could not be decoded")
    assert not png.exists()
    assert main([*args[:4], "21", *args[5:]]) == 0  # the next frame is fine


def test_a_file_whose_packets_break_off_lists_the_frames_it_announces(tmp_path, model):
    """Matroska garbled from packet 25 on (its size and its tags intact): the demuxer stops
    there; the frames the track's own duration announces beyond are listed as missing."""
    import av

    src = encode(tmp_path, "ffv1.mkv", "-c:v", "ffv1", "-g", "1")
    with av.open(src) as c:
        at = [p.pos for p in c.demux(c.streams.video[0]) if p.size][25]
    data = bytearray(open(src, "rb").read())
    for i in range(at, len(data) - 300):
        data[i] = (data[i] * 7 + 13) & 0xFF
    open(src, "wb").write(bytes(data))
    out = tmp_path / "out" / "clip_x2.mov"
    out.parent.mkdir()
    assert upscale(src, out, model, tmp_path / "r.json") == 1
    clip = json.loads((tmp_path / "r.json").read_text())["clips"][0]
    assert clip["frames"] == 25
    assert clip["damaged"] == [
        {
            "first": 25,
            "last": 39,
            "timecode": "01:00:01:00-01:00:01:14",
            "problem": "missing: the file's frames end early (damaged)",
            "rendered_as": "not rendered (the output ends with the file)",
        }
    ]
    check_output(out, clip, 25)
