"""Conform media details: audio copied through, 10-bit kept, colour tags kept, frame mapping."""

from __future__ import annotations

import math

import av
import numpy as np
import opentimelineio as otio
import pytest

from kwaflux_ofx.conform.plan import choose_origin
from kwaflux_ofx.conform.timeline import ClipUse
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import MediaInfo, probe
from tests.support.conform import conform, one_clip_timeline
from tests.support.media import (
    decode_indices,
    make_nearest_x2,
    make_sequence,
    make_video,
    read_index,
)

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_nearest_x2(tmp_path_factory.mktemp("model") / "nearest_x2.onnx"))


def test_audio_is_copied_for_the_rendered_span(tmp_path, model):
    make_video(tmp_path / "src" / "a.mov", 96, 24, "00:00:10:00", audio=True)
    tl = one_clip_timeline(
        tmp_path / "t.otio", otio.schema.ExternalReference("a.mov"), 240 + 24, 24
    )
    rep = conform(tl, tmp_path, model=model, codec="prores_422hq")
    out = rep["clips"][0]["output"]
    with av.open(out) as c:
        assert len(c.streams.audio) == 1
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(a))
    assert abs(samples - 48000) <= 1024  # one second of 48 kHz audio for 24 frames at 24 fps
    assert decode_indices(out)[0] == list(range(24, 48))


def test_ten_bit_source_stays_ten_bit(tmp_path):
    """A 10-bit ProRes gradient with 1024 levels through a pass-through (scale 1) conform keeps
    more levels than 8 bits could hold."""
    w, h = 1024, 8

    def gradient(_k):
        row = (np.arange(w, dtype=np.uint32) * 64).astype(np.uint16)  # 10-bit codes as 16-bit
        return np.repeat(np.repeat(row[None, :, None], h, 0), 3, 2)

    src = make_video(
        tmp_path / "src" / "g.mov",
        3,
        24,
        codec="prores_ks",
        size=(w, h),
        frame_fn=gradient,
        color=True,
    )
    assert probe(src).bits == 10
    tl = one_clip_timeline(tmp_path / "t.otio", otio.schema.ExternalReference("g.mov"), 0, 3)
    rep = conform(tl, tmp_path, scale=1, codec="prores_422hq")
    info = probe(rep["clips"][0]["output"])
    assert info.bits == 10 and info.pix_fmt == "yuv422p10le"
    frame = dict(read_frames(info, 1, 2))[1]
    assert frame.dtype == np.uint16
    assert len(np.unique(frame[4, :, 1] >> 6)) > 600  # 8 bits would give at most 256
    # BT.709 tags carried over
    assert (info.color["color_primaries"], info.color["color_trc"], info.color["colorspace"]) == (
        1,
        1,
        1,
    )


def test_sequence_counted_by_first_frame_number(tmp_path, model):
    """No timecode in the files: the NLE counts an image sequence by its frame numbers
    (file plate.1001 is frame 0), and the output keeps that numbering."""
    make_sequence(tmp_path / "src", "plate.", 1001, 40, ext=".png", padding=4)
    ref = otio.schema.ImageSequenceReference(
        target_url_base="/mnt/show/plates/",
        name_prefix="plate.",
        name_suffix=".png",
        start_frame=1001,
        frame_zero_padding=4,
        rate=24,
        available_range=TR(RT(1001, 24), RT(40, 24)),
    )
    tl = one_clip_timeline(tmp_path / "t.otio", ref, 1010, 10)
    rep = conform(tl, tmp_path, model=model, codec="exr", handles=2)
    assert rep["summary"]["done"] == 1
    out = rep["clips"][0]["output"]
    info = probe(sorted(p for p in (tmp_path / "m" / "plate").iterdir())[0])
    assert info.first_number == 1008 and info.frames == 14 and info.width == 128
    idx = [read_index(f) for _, f in read_frames(info, 0, info.frames)]
    assert idx == list(range(7, 21))
    new = otio.adapters.read_from_file(str(tmp_path / "o.otio")).find_clips()[0]
    ref = new.media_reference
    assert isinstance(ref, otio.schema.ImageSequenceReference)
    assert ref.start_frame == 1008 and ref.available_range == TR(RT(1008, 24), RT(14, 24))
    # OTIO maps the clip's first frame to the right new file
    assert ref.target_url_for_image_number(2).endswith("plate.0001010.exr")
    assert out.endswith("plate")


def _info(rate, frames, tc=None):
    return MediaInfo(
        path="x.mov",
        kind="video",
        width=64,
        height=36,
        channels=3,
        rate=rate,
        frames=frames,
        start_tc=tc,
        bits=8,
    )


@pytest.mark.parametrize(
    "clip_rate,media_rate,start,dur,tc,avail,first,last",
    [
        # same rate, timecode origin: 01:00:04:05 in media starting 01:00:00:00
        (24, 24, 86501, 31, 86400, None, 101, 132),
        # NTSC written two ways: frame numbers map 1:1 whatever the rounding
        (23.976, 24000 / 1001, 120717, 75, 120700, None, 17, 92),
        # a 15 fps sequence over 30 fps media: times scale, no timecode, available range at 0
        (15, 30, 0, 50, None, (0, 30), 0, 100),
        # timecode that does not fit (a stand-in file from elsewhere): the available range does
        (24, 24, 103, 6, 5000, (100, 24), 3, 9),
        # both fit: the file's own timecode wins over the exported available range
        (24, 24, 103, 6, 0, (100, 24), 103, 109),
    ],
)
def test_frame_mapping(clip_rate, media_rate, start, dur, tc, avail, first, last):
    clip = otio.schema.Clip("c")
    use = ClipUse(clip=clip, index=0, track_name="", start=start, end=start + dur, rate=clip_rate)
    ref = otio.schema.ExternalReference("x.mov")
    if avail:
        ref.available_range = TR(RT(avail[0], avail[1]), RT(1000, avail[1]))
    origin, _, s, e = choose_origin(use, ref, _info(media_rate, 400 if tc is None else 200, tc))
    assert (math.floor(s + 1e-6), math.ceil(e - 1e-6)) == (first, last)


def test_codec_that_cannot_take_the_size_fails_that_clip_only(tmp_path, model):
    make_video(tmp_path / "src" / "a.mov", 10, 24)
    tl = one_clip_timeline(tmp_path / "t.otio", otio.schema.ExternalReference("a.mov"), 0, 5)
    rep = conform(tl, tmp_path, model=model, codec="dnxhr_hqx")
    c = rep["clips"][0]
    assert c["status"] == "failed" and "at least 256x120" in c["reason"]
    assert not list((tmp_path / "m").iterdir())  # no partial file left


@pytest.mark.parametrize("tagged", [True, False])
def test_colours_survive_a_pass_through(tmp_path, tagged):
    """Decode with the source's matrix, encode with the matrix the output is tagged with:
    a saturated colour comes back where it was (a BT.601/709 mix-up moves it by ~10 levels)."""
    colour = np.array([200, 60, 30], np.uint8)
    make_video(
        tmp_path / "src" / "c.mov",
        3,
        24,
        codec="prores_ks",
        size=(128, 72),
        frame_fn=lambda _k: np.broadcast_to(colour, (72, 128, 3)).copy(),
        color=tagged,
    )
    tl = one_clip_timeline(tmp_path / "t.otio", otio.schema.ExternalReference("c.mov"), 0, 3)
    rep = conform(tl, tmp_path, scale=1, codec="h264")
    info = probe(rep["clips"][0]["output"])
    frame = dict(read_frames(info, 1, 2))[1]
    got = frame[30:40, 60:70].reshape(-1, 3).mean(0) / (257.0 if frame.dtype == np.uint16 else 1)
    assert np.abs(got - colour).max() <= 3, got
    if tagged:
        assert info.color["colorspace"] == 1 and info.color["color_range"] == 1


def test_decoder_recovers_when_a_seek_lands_past_the_frame(tmp_path, monkeypatch):
    """Some demuxers seek past the asked position; the reader must not lose those frames."""
    src = make_video(tmp_path / "g.mp4", 60, 24, codec="libx264")  # keyframes every 12
    info = probe(src)
    real_open = av.open

    class Overshooting:
        def __init__(self, c):
            self.c = c

        def seek(self, offset, **kw):
            return self.c.seek(offset * 3, **kw)  # lands well after the target

        def __getattr__(self, name):
            return getattr(self.c, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.c.__exit__(*exc)

    monkeypatch.setattr(av, "open", lambda *a, **k: Overshooting(real_open(*a, **k)))
    got = [(i, read_index(f)) for i, f in read_frames(info, 14, 20)]
    assert got == [(i, i) for i in range(14, 20)]


@pytest.mark.parametrize("rate", [30000 / 1001, 60000 / 1001])
def test_drop_frame_timecode_matches_otio(rate):
    from kwaflux_ofx.media.timecode import frames_to_timecode, timecode_to_frames

    for frames in (
        0,
        1,
        1799,
        1800,
        1801,
        17981,
        17982,
        17983,
        107892,
        107892 + 1800 * 7 + 5,
        2589407,
    ):
        tc = otio.opentime.to_timecode(RT(frames, rate), rate)
        assert ";" in tc
        assert frames_to_timecode(frames, rate, drop_frame=True) == tc
        assert timecode_to_frames(tc, rate) == frames
    # non-drop rates ignore ';'-less strings and never drop
    assert timecode_to_frames("01:00:00:00", 25) == 90000


def test_drop_frame_source_maps_and_keeps_its_timecode(tmp_path, model):
    """29.97 drop-frame media from 01:00:00;00: the cut at 01:01:00;02 (minute 61 has no ;00
    or ;01) is media frame 1800, not 1798 as a non-drop count of the timecode would say."""
    rate = 30000 / 1001
    src = make_video(tmp_path / "src" / "df.mov", 1850, rate, "01:00:00;00")
    info = probe(src)
    assert (
        info.drop_frame and info.start_tc == otio.opentime.from_timecode("01:00:00;00", rate).value
    )
    start = otio.opentime.from_timecode("01:01:00;02", rate)
    ref = otio.schema.ExternalReference("df.mov")
    tl = one_clip_timeline(tmp_path / "t.otio", ref, start.value, 10, rate=rate)
    rep = conform(tl, tmp_path, model=model)
    assert rep["summary"]["done"] == 1
    idx, _, tc = decode_indices(rep["clips"][0]["output"])
    assert idx == list(range(1800, 1810))  # 60 s of 29.97 DF: 1800 frames after 01:00:00;00
    assert tc == "01:01:00;02"
