"""Subtitles a container cannot take as they are: text tracks are converted to the codec it holds
(SRT/ASS -> mov_text in MOV/MP4, mov_text -> subrip in MKV), cue by cue with their times, cut
and shifted with the render's span; bitmap tracks and any track in MXF are left out with a
warning; a cue that does not decode is left out with a warning, never a failed render."""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from kwaflux_ofx.media.codecs import CODECS
from kwaflux_ofx.media.encode import VideoWriter
from kwaflux_ofx.media.join import join_segments
from tests.support.media import make_nearest_x2, make_video
from tests.test_delivery import ffmpeg, upscale

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

RATE = 24
FRAME = 1 / RATE
SRT = (
    "1\n00:00:00,250 --> 00:00:00,750\nhello <i>there</i>\n\n"
    "2\n00:00:01,000 --> 00:00:01,500\nsecond line\nwith two rows\n\n"
    "3\n00:00:01,750 --> 00:00:02,000\nthird\n"
)
CUES = [
    ("hello there", 0.25, 0.75),
    ("second line\nwith two rows", 1.0, 1.5),
    ("third", 1.75, 2.0),
]
# An ASS script whose Default style names its own font and size, for the styling to follow.
ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, \
Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Courier New,30,&H0000FFFF,&H00FFFFFF,&H00000000,&H00000000,\
0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.25,0:00:00.75,Default,,0,0,0,,hello {\\b1}there{\\b0}
Dialogue: 0,0:00:01.00,0:00:01.50,Default,,0,0,0,,second line\\Nwith two rows
Dialogue: 0,0:00:01.75,0:00:02.00,Default,,0,0,0,,third
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(make_nearest_x2(tmp_path_factory.mktemp("m") / "nearest_x2.onnx"))


def subtitled(tmp_path, name: str, sub_codec: str, script: str = SRT, ext: str = "srt") -> Path:
    """Two seconds of video with one subtitle track of three cues, tagged French."""
    video = make_video(tmp_path / "v.mkv", 2 * RATE, rate=RATE, codec="mjpeg", size=(32, 24))
    (tmp_path / f"s.{ext}").write_text(script)
    out = tmp_path / name
    ffmpeg("-i", str(video), "-i", str(tmp_path / f"s.{ext}"), "-map", "0:v", "-map", "1:s",
           "-c:v", "copy", "-c:s", sub_codec, "-metadata:s:s:0", "language=fra",
           "-metadata:s:s:0", "title=Français", str(out))  # fmt: skip
    return out


def plain(dialogue: bytes) -> str:
    """The text of an ASS dialogue line (ReadOrder,Layer,Style,...,Text), override tags out."""
    text = dialogue.decode().split(",", 8)[8]
    return re.sub(r"\{[^}]*\}", "", text).replace("\\N", "\n")


def read_cues(path) -> dict:
    """The first subtitle stream as decoded back: codec, metadata, (text, start, end) cues."""
    with av.open(str(path)) as c:
        s = c.streams.subtitles[0]
        s.codec_context.open(strict=False)  # the decoder's ASS header comes with it
        cues, raw = [], []
        for p in c.demux(s):
            if not p.size or p.pts is None:
                continue
            subs = s.codec_context.decode2(p)
            if subs is None:  # mov_text's empty sample that clears the screen
                continue
            start = float(p.pts * p.time_base)
            end = start + float(p.duration * p.time_base)
            cues.append(("".join(plain(r.ass) for r in subs), start, end))
            raw.extend(r.ass for r in subs)
        meta = {k.lower(): v for k, v in s.metadata.items()}
        return {
            "codec": s.codec_context.name,
            "language": meta.get("language"),
            "title": meta.get("title") or meta.get("name"),
            "cues": cues,
            "raw": raw,
            "header": (s.codec_context.subtitle_header or b"").decode(),
        }


def assert_cues(got, want) -> None:
    assert [c[0] for c in got] == [c[0] for c in want]
    for (_, s0, e0), (_, s1, e1) in zip(got, want, strict=True):
        assert s0 == pytest.approx(s1, abs=FRAME) and e0 == pytest.approx(e1, abs=FRAME)


def test_srt_in_mkv_becomes_mov_text_in_a_mov(tmp_path, model):
    src = subtitled(tmp_path, "src.mkv", "srt")
    assert read_cues(src)["codec"] == "srt"
    out = tmp_path / "out.mov"
    assert upscale(src, out, model, "--codec", "h264") == 0
    got = read_cues(out)
    assert (got["codec"], got["language"], got["title"]) == ("mov_text", "fra", "Français")
    assert_cues(got["cues"], CUES)
    assert "{\\i1}there" in got["raw"][0].decode()  # the italics survive as mov_text style


def test_mov_text_in_mov_becomes_subrip_in_an_mkv(tmp_path, model):
    src = subtitled(tmp_path, "src.mov", "mov_text")
    out = tmp_path / "out.mkv"
    assert upscale(src, out, model) == 0
    got = read_cues(out)
    assert (got["codec"], got["language"], got["title"]) == ("srt", "fra", "Français")
    assert_cues(got["cues"], CUES)


def test_ass_in_mkv_becomes_mov_text_with_its_style_in_an_mp4(tmp_path, model):
    src = subtitled(tmp_path, "src.mkv", "ass", script=ASS, ext="ass")
    out = tmp_path / "out.mp4"
    assert upscale(src, out, model, "--codec", "h264") == 0
    got = read_cues(out)
    assert (got["codec"], got["language"]) == ("mov_text", "fra")
    assert_cues(got["cues"], CUES)
    assert "{\\b1}there" in got["raw"][0].decode()
    # the style's font, size and colour, through mov_text's sample description and back
    assert "Style: Default,Courier New,30,&Hffff," in got["header"]


def test_a_span_cuts_and_shifts_the_converted_cues(tmp_path, model):
    src = subtitled(tmp_path, "src.mkv", "srt")
    out = tmp_path / "out.mov"
    # frames 6..46: 0.25 s to 1.9167 s, so every cue moves 0.25 s earlier and the last is cut
    assert upscale(src, out, model, "--codec", "h264", "--start", "6", "--end", "46") == 0
    want = [("hello there", 0.0, 0.5), ("second line\nwith two rows", 0.75, 1.25)]
    want.append(("third", 1.5, 40 / RATE))
    assert_cues(read_cues(out)["cues"], want)
    # a cue that starts before the span is left out, as a copied one is
    assert upscale(src, tmp_path / "late.mov", model, "--codec", "h264", "--start", "12") == 0
    assert_cues(
        read_cues(tmp_path / "late.mov")["cues"], [(t, a - 0.5, b - 0.5) for t, a, b in CUES[1:]]
    )


def test_a_cue_that_does_not_decode_is_left_out_with_a_warning(tmp_path, model, caplog):
    good = subtitled(tmp_path, "good.mov", "mov_text")
    bad = tmp_path / "bad.mov"
    # the same file with the second cue's sample cut to one byte: the mov_text decoder refuses
    # a sample shorter than its 2-byte text length
    with av.open(str(good)) as src, av.open(str(bad), "w") as dst:
        outs = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for s in src.streams.subtitles:
            outs[s.index].metadata.update(s.metadata)
        broken = False
        for p in src.demux():
            if p.size == 0 or p.dts is None:
                continue
            out_stream = outs[p.stream.index]
            if p.stream.type == "subtitle" and float(p.pts * p.time_base) == 1.0:
                q = av.Packet(b"\x01")
                q.pts, q.dts, q.duration, q.time_base = p.pts, p.dts, p.duration, p.time_base
                p, broken = q, True
            p.stream = out_stream
            dst.mux(p)
    assert broken
    out = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING):
        assert upscale(bad, out, model) == 0
    assert_cues(read_cues(out)["cues"], [CUES[0], CUES[2]])
    warned = [r.getMessage() for r in caplog.records if "could not be converted" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"{bad}: 1 subtitle cue(s) of stream #1")


def test_a_bitmap_track_is_left_out_with_a_warning(tmp_path, model, caplog):
    video = make_video(tmp_path / "v.mkv", RATE, rate=RATE, codec="ffv1", size=(32, 24))
    src = tmp_path / "dvb.mkv"
    # DVB bitmap subtitles muxed as they come (never decoded here): MOV cannot hold them
    with av.open(str(video)) as vin, av.open(str(src), "w") as dst:
        v = dst.add_stream_from_template(vin.streams.video[0])
        s = dst.add_mux_stream("dvbsub")
        s.time_base = Fraction(1, 1000)
        for p in vin.demux(vin.streams.video[0]):
            if p.size:
                p.stream = v
                dst.mux(p)
        for k in range(3):
            q = av.Packet(bytes([0x20, 0x00, 0x0F, 0x10, 0x00, 0x01, 0x00, 0x00, 0xFF]))
            q.pts = q.dts = 250 * k
            q.duration, q.time_base = 200, Fraction(1, 1000)
            q.stream = s
            dst.mux(q)
    out = tmp_path / "out.mov"
    with caplog.at_level(logging.WARNING):
        assert upscale(src, out, model, "--codec", "h264") == 0
    with av.open(str(out)) as c:
        assert len(c.streams.subtitles) == 0 and len(c.streams.video) == 1
    warned = [r.getMessage() for r in caplog.records if "(dvbsub)" in r.getMessage()]
    assert len(warned) == 1 and "a bitmap subtitle is not converted to text" in warned[0]


def test_mxf_leaves_subtitles_out_instead_of_failing(tmp_path, caplog):
    src = subtitled(tmp_path, "src.mkv", "srt")
    part = tmp_path / "p.mxf"
    writer = VideoWriter(str(part), CODECS["dnxhr_lb"], 256, 128, RATE, None, False)
    for _ in range(3):
        writer.write(np.zeros((128, 256, 3), np.uint8))
    writer.close()
    out = tmp_path / "j.mxf"
    with caplog.at_level(logging.WARNING):
        assert join_segments([str(part)], str(out), RATE, streams_from=(str(src), 0.0, 0.125)) == 3
    with av.open(str(out)) as c:
        assert len(c.streams.subtitles) == 0
    assert any("MXF holds no subtitles" in r.getMessage() for r in caplog.records)
