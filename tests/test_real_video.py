"""Real footage for the learned temporal model (python/kwaflux_lab/sets/real_video.py): clips
read and shrunk exactly, windows of consecutive frames that never span a cut, and the
training set built with a share of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("scipy")

STEP = 2  # the scene moves this many pixels right per frame (full size)
SHRINK = 2


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = rng.standard_normal((h, w, 3))
    img = sum(gaussian_filter(noise, (s, s, 0)) * s for s in (1.0, 3.0))
    return np.clip(128 + 40 * img / img.std(), 0, 255).astype(np.uint8)


def _write_clip(path: Path, frames: list[np.ndarray]) -> None:
    """Lossless (FFV1) so the decoded pictures are the written ones."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "bgr0"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """12 frames of a scene panning right by STEP px a frame, a cut, 8 frames of another."""
    rng = np.random.default_rng(4)
    h, w = 160, 256
    first, second = _scene(rng, h, w + 40), _scene(rng, h, w)
    frames = [np.ascontiguousarray(first[:, 40 - STEP * i : 40 - STEP * i + w]) for i in range(12)]
    frames += [np.ascontiguousarray(np.roll(second, i, axis=0)) for i in range(8)]
    path = tmp_path_factory.mktemp("real") / "pan_cut.mkv"
    _write_clip(path, frames)
    return path, frames


def test_clip_is_read_in_order_and_shrunk_by_area(clip_file):
    from kwaflux_lab.sets import real_video

    path, frames = clip_file
    got = real_video.read_clip(path, SHRINK)
    assert got.shape == (20, 80, 128, 3) and got.dtype == np.uint8
    for i in (0, 7, 12, 19):
        want = frames[i].reshape(80, 2, 128, 2, 3).astype(np.float32).mean(axis=(1, 3))
        assert np.array_equal(got[i], np.rint(want).astype(np.uint8)), i


def test_windows_never_span_the_cut(clip_file):
    from kwaflux_lab.sets import real_video

    path, _ = clip_file
    clip = real_video.read_clip(path, SHRINK)
    starts = set(real_video.window_starts(clip, 64).tolist())
    # Frames 0-11 and 12-19: windows of five start at 0..7 and 12..15, none at 8..11.
    assert starts == set(range(8)) | set(range(12, 16))
    assert len(real_video.window_starts(clip, 96)) == 0  # 80 rows: no room for a 96 px frame


def _find(clip: np.ndarray, w: np.ndarray) -> int | None:
    """The first frame of the run of len(w) frames of `clip` that `w` was cut from, or None."""
    n, size = len(w), w.shape[1]
    for s in range(len(clip) - n + 1):
        for y in range(clip.shape[1] - size + 1):
            for x in range(clip.shape[2] - size + 1):
                if np.array_equal(clip[s, y : y + size, x : x + size], w[0]) and np.array_equal(
                    clip[s : s + n, y : y + size, x : x + size], w
                ):
                    return s
    return None


def test_random_window_holds_consecutive_frames_with_the_real_motion(clip_file):
    from kwaflux_lab.sets import real_video

    path, _ = clip_file
    clip = real_video.read_clip(path, SHRINK)
    rng = np.random.default_rng(0)
    seen_pan = 0
    for _ in range(12):
        w = real_video.random_window(rng, [clip], 64)
        assert w is not None and w.shape == (5, 64, 64, 3)
        # Found in the clip as five consecutive frames at one place.
        start = _find(clip, w)
        assert start is not None, "window not cut from consecutive frames"
        if start < 8:  # the pan: each frame the last one moved right by STEP / SHRINK px
            seen_pan += 1
            k = STEP // SHRINK
            assert np.array_equal(w[1][:, k:], w[0][:, :-k])
    assert seen_pan > 0


def test_training_set_takes_its_share_of_real_windows(clip_file, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from kwaflux_lab.sets import real_video, temporal_data

    path, _ = clip_file
    clip = real_video.read_clip(path, 1)  # full size: room for the 96 px frames
    rng = np.random.default_rng(1)
    tiles = np.stack([_scene(rng, 128, 128) for _ in range(3)])
    monkeypatch.setattr(temporal_data, "P_REAL", 1.0)
    out = temporal_data.build(
        tmp_path / "w.npz", count=3, seed=2, tiles=tiles, photos=[tiles[0]], real=[clip]
    )
    assert temporal_data.read_meta(out)["real"] == 3
    w = temporal_data.load(out)
    assert w["noisy"].shape == (3, 5, temporal_data.CROP, temporal_data.CROP, 3)
    # The clean centre is a picture of the clip (the damage may flip or shift its levels, so
    # compare what survives both: the spread of its values is the clip's, not a flat fill).
    assert all(c.std() > 10 for c in w["clean"])


def test_unreadable_clip_names_the_file(tmp_path):
    from kwaflux_lab.sets import real_video

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(SystemExit, match="broken.mp4"):
        real_video.read_clip(bad, 2)
