"""Every output frame on its slot: upscale and conform of held-frame, B-frame, edit-list and VFR clips."""

from __future__ import annotations

import dataclasses
import fractions

import av
import opentimelineio as otio
import pytest

from kwaflux_ofx.cli import main
from tests.support.conform import conform, one_clip_timeline
from tests.support.media import index_frame, make_nearest_x2, read_index

RATE = 15
W, H = 64, 36
# The slots a change-only capture (or a phone dropping frames) wrote a picture on; 20 pictures
# over 62 slots, so --vfr keep renders two segments and --vfr cfr six, all joined.
HELD = (0, 1, 2, 7, 8, 20, 21, 22, 23, 24, 25, 26, 27, 40, 41, 44, 45, 46, 60, 61)
EVERY = tuple(range(30))
# A tick of Matroska's millisecond time base, the coarsest a file here has (two times rounded
# to it are up to one apart).
TICK = 1.1e-3


@dataclasses.dataclass(frozen=True)
class Source:
    """A clip whose picture on slot s (shown at s / RATE from its first frame) shows s."""

    name: str
    ext: str
    codec: str
    slots: tuple[int, ...]
    offset: int = 0  # slots before the first frame's timestamp (a first pts that is not 0)
    bframes: int = 0
    rate: int = RATE

    def write(self, path) -> str:
        with av.open(str(path), "w") as c:
            opts = {"bf": str(self.bframes), "crf": "10", "g": "12"} if self.bframes else {}
            s = c.add_stream(self.codec, rate=self.rate, options=opts)
            s.width, s.height = W, H
            s.pix_fmt = "yuvj420p" if self.codec == "mjpeg" else "yuv420p"
            s.codec_context.time_base = fractions.Fraction(1, self.rate)
            for n in self.slots:
                f = av.VideoFrame.from_ndarray(index_frame(n, W, H), format="rgb24")
                f.pts = self.offset + n
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        return str(path)


SOURCES = [
    Source("held-frame AVI", ".avi", "mjpeg", HELD),
    Source("AVI with B-frames", ".avi", "libx264", EVERY, bframes=3),
    Source("MP4 with an edit list", ".mp4", "libx264", EVERY, offset=10, bframes=2),
    Source("MKV without decode times, starting late", ".mkv", "libx264", EVERY, 7, bframes=2),
    Source("VFR MP4 with B-frames", ".mp4", "libx264", HELD, bframes=2),
    Source("VFR MKV starting late", ".mkv", "libx264", HELD, offset=3, bframes=2),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_nearest_x2(tmp_path_factory.mktemp("model") / "nearest_x2.onnx"))


def shown(slots, k: int) -> int:
    """The picture on slot k: the last one written at or before it (a held picture)."""
    return max(n for n in slots if n <= k)


def packet_times(path) -> tuple[list[float], float]:
    """The video packets' presentation times, sorted, in seconds from the first, and where the
    stream ends (the last shown packet's time plus its duration)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        got = [(p.pts, p.duration) for p in c.demux(s) if p.size]
        tb = s.time_base
    first = min(p for p, _ in got)
    last, dur = max(got)
    return [float((p - first) * tb) for p, _ in sorted(got)], float((last + dur - first) * tb)


def decoded(path) -> tuple[list[int], tuple[int, int], float]:
    """The numbers the output's pictures show, its size and the container's duration (s)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        numbers = [read_index(f.to_ndarray(format="rgb24")) for f in c.decode(s)]
        return numbers, (s.codec_context.width, s.codec_context.height), c.duration / 1e6


@pytest.mark.parametrize("out_ext", [".mp4", ".mkv", ".mov"])
@pytest.mark.parametrize("mode", ["cfr", "keep"])
@pytest.mark.parametrize("src", SOURCES, ids=[s.name for s in SOURCES])
def test_upscale_puts_every_picture_on_its_slot(tmp_path, model, src, mode, out_ext):
    path = src.write(tmp_path / f"in{src.ext}")
    slots, length = src.slots, (src.slots[-1] + 1) / RATE
    # the fixture is what it claims: the source's own timestamps are the slots
    times, _ = packet_times(path)
    assert times == pytest.approx([n / RATE for n in slots], abs=TICK)
    out = tmp_path / f"out{out_ext}"
    argv = ["-q", "upscale", path, str(out), "--model", model, "--denoise", "0", "--vfr", mode]
    assert main(argv) == 0
    numbers, size, duration = decoded(out)
    times, end = packet_times(out)
    assert size == (2 * W, 2 * H)
    if mode == "cfr":  # a picture per slot of the base rate, a held one repeated
        want = list(range(slots[-1] + 1))
        assert numbers == [shown(slots, k) for k in want]
    else:  # each picture once, at the source's own time
        want = list(slots)
        assert numbers == want
    assert times == pytest.approx([k / RATE for k in want], abs=TICK)
    assert end == pytest.approx(length, abs=1 / RATE)
    assert duration == pytest.approx(length, abs=1 / RATE)  # what players show (an MP4's mvhd)


def held_avi_with_audio(path, rate: int = RATE) -> str:
    """The held-frame capture with a mono PCM track as long as its slots."""
    import numpy as np

    with av.open(str(path), "w") as c:
        v = c.add_stream("mjpeg", rate=rate)
        v.width, v.height, v.pix_fmt = W, H, "yuvj420p"
        v.codec_context.time_base = fractions.Fraction(1, rate)
        a = c.add_stream("pcm_s16le", rate=48000, layout="mono")
        n = round((HELD[-1] + 1) / rate * 48000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, n), np.int16), format="s16", layout="mono")
        af.sample_rate, af.pts = 48000, 0
        for p in [*a.encode(af), *a.encode()]:
            c.mux(p)
        for k in HELD:
            f = av.VideoFrame.from_ndarray(index_frame(k, W, H), format="rgb24")
            f.pts = k
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    return str(path)


@pytest.mark.parametrize("mode", ["cfr", "keep"])
def test_audio_covers_the_same_span_as_the_kept_frames(tmp_path, model, mode):
    """--start counts frames as the mode does (keep: the sixth picture, on slot 20; cfr: slot
    5); the audio copied starts and ends where that span's pictures are shown."""
    src = held_avi_with_audio(tmp_path / "in.avi")
    out = tmp_path / "out.mkv"
    argv = ["-q", "upscale", src, str(out), "--model", model, "--denoise", "0", "--vfr", mode]
    assert main([*argv, "--start", "5"]) == 0
    first_slot = HELD[5] if mode == "keep" else 5
    numbers, _, _ = decoded(out)
    assert numbers[0] == shown(HELD, first_slot)
    with av.open(str(out)) as c:
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
    assert samples / 48000 == pytest.approx((HELD[-1] + 1 - first_slot) / RATE, abs=1 / RATE)


@pytest.mark.parametrize("target", ["out.mxf", "seq"])
def test_keep_refuses_an_output_that_cannot_hold_frame_times(tmp_path, model, target, capsys):
    # 25 fps: a rate MXF takes, so only the frame times stand in the way
    src = Source("held", ".avi", "mjpeg", HELD, rate=25).write(tmp_path / "in.avi")
    out = tmp_path / target
    codec = ["--codec", "exr"] if target == "seq" else []
    argv = ["upscale", src, str(out), "--model", model, "--denoise", "0", *codec]
    assert main([*argv, "--vfr", "keep"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(out) in line and "use --vfr cfr" in line
    assert not out.exists()


@pytest.mark.parametrize("src", [SOURCES[0], SOURCES[4]], ids=["held-frame AVI", "VFR MP4"])
def test_conform_maps_a_source_range_onto_the_same_slots(tmp_path, model, src):
    (tmp_path / "src").mkdir()
    name = f"clip{src.ext}"
    src.write(tmp_path / "src" / name)
    start, dur = 5, 30  # slots 5..34: a held run, new pictures, another held run
    ref = otio.schema.ExternalReference(name)
    tl = one_clip_timeline(tmp_path / "t.otio", ref, start, dur, rate=RATE)
    rep = conform(tl, tmp_path, model=model, codec="ffv1")
    assert rep["clips"][0]["status"] == "done", rep["clips"][0]
    out = rep["clips"][0]["output"]
    numbers, size, duration = decoded(out)
    assert size == (2 * W, 2 * H)
    assert numbers == [shown(src.slots, k) for k in range(start, start + dur)]
    times, end = packet_times(out)
    assert times == pytest.approx([k / RATE for k in range(dur)], abs=TICK)
    assert end == pytest.approx(dur / RATE, abs=1 / RATE)
