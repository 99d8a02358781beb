"""`kwaflux upscale|preview|models`: real files in, real files out, one-line errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kwaflux_ofx.cli import main
from kwaflux_ofx.engine.engine import from_float, to_float
from kwaflux_ofx.engine.resample import resize
from kwaflux_ofx.media.stills import read_image, write_image
from tests.support.cli import run_cli
from tests.support.onnx_models import noise_denoiser, np_denoise, np_sr, sr_model


@pytest.fixture(scope="module")
def mdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    sr_model(d / "sr2.onnx", 2)
    sr_model(d / "sr4.onnx", 4)
    noise_denoiser(d / "dn.onnx")
    return d


def rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize(
    "ext,dtype",
    [
        ("png", np.uint8),
        ("png", np.uint16),
        ("tif", np.uint16),
        ("exr", np.float16),
        ("exr", np.float32),
        ("dpx", np.uint16),
    ],
)
def test_upscale_keeps_depth_and_matches_engine(tmp_path, mdir, ext, dtype):
    src = from_float(rand((14, 18, 3)), np.dtype(dtype))
    inp, out = tmp_path / f"in.{ext}", tmp_path / f"out.{ext}"
    write_image(inp, src)
    rc = main(
        ["-q", "upscale", str(inp), str(out), "--model", str(mdir / "sr2.onnx"), "--device", "cpu"]
    )
    assert rc == 0
    got, _ = read_image(out)
    assert got.dtype == dtype and got.shape == (28, 36, 3)
    pixels = to_float(src)
    if ext == "exr":
        # EXR holds scene-linear light: the model runs on its display encoding (--colour-space
        # auto), and the result goes back to linear.
        from kwaflux_ofx.engine.colour_curves import from_display, to_display
        from kwaflux_ofx.settings import ColourSpace

        lin = ColourSpace.LINEAR
        expect_f = from_display(np_sr(to_display(pixels, lin), 2).astype(np.float32), lin)
    else:
        expect_f = np_sr(pixels, 2).astype(np.float32)
    expect = from_float(expect_f, np.dtype(dtype))
    assert np.abs(to_float(got) - to_float(expect)).max() <= (
        1 / 255 if dtype == np.uint8 else 1e-3
    )


def test_upscale_with_denoise_first(tmp_path, mdir):
    src = rand((12, 12, 3), 1)
    inp, out = tmp_path / "in.exr", tmp_path / "out.exr"
    write_image(inp, src)
    rc = main(
        [
            "-q",
            "upscale",
            str(inp),
            str(out),
            "--model",
            str(mdir / "sr2.onnx"),
            "--denoise",
            "0.5",
            "--denoise-model",
            str(mdir / "dn.onnx"),
            "--colour-space",  # the order of the stages is the point here, not EXR's linear light
            "display",
        ]
    )
    assert rc == 0
    np.testing.assert_allclose(read_image(out)[0], np_sr(np_denoise(src, 0.1), 2), atol=1e-5)


def test_upscale_scale_defaults_to_the_models_scale(tmp_path, mdir):
    inp, out = tmp_path / "in.png", tmp_path / "out.png"
    write_image(inp, from_float(rand((5, 7, 4)), np.dtype(np.uint8)), {"premultiplied": False})
    assert main(["-q", "upscale", str(inp), str(out), "--model", str(mdir / "sr4.onnx")]) == 0
    assert read_image(out)[0].shape == (20, 28, 4)


def test_bad_inputs_one_line_exit_2_no_partial_output(tmp_path, mdir):
    good = tmp_path / "good.png"
    write_image(good, from_float(rand((6, 6, 3)), np.dtype(np.uint8)))
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG but not really")
    notmodel = tmp_path / "model.onnx"
    notmodel.write_text("{}")
    out = tmp_path / "o.png"
    cases = [
        (["upscale", str(garbage), str(out)], "garbage.png"),
        (["upscale", str(tmp_path / "missing.png"), str(out)], "missing.png: image not found"),
        (
            ["upscale", str(good), str(out), "--model", str(notmodel)],
            "model.onnx: not a readable ONNX model",
        ),
        (
            ["upscale", str(good), str(out), "--model", str(mdir / "sr4.onnx"), "--scale", "2"],
            "x4 model but x2",
        ),
        (
            ["upscale", str(good), str(good), "--model", str(mdir / "sr2.onnx")],
            "overwrite the input",
        ),
    ]
    for args, needle in cases:
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], r.stderr
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    # an image with an unusable channel count
    five = tmp_path / "five.exr"
    write_image(five, rand((4, 4, 5)))
    r = run_cli("upscale", str(five), str(out), "--model", str(mdir / "sr2.onnx"))
    assert r.returncode == 2 and "five.exr: has 5 channels" in r.stderr


def test_existing_output_is_not_overwritten_without_flag(tmp_path, mdir):
    inp, out = tmp_path / "in.png", tmp_path / "out.png"
    write_image(inp, from_float(rand((6, 6, 3)), np.dtype(np.uint8)))
    out.write_bytes(b"precious")
    assert main(["-q", "upscale", str(inp), str(out), "--model", str(mdir / "sr2.onnx")]) == 2
    assert out.read_bytes() == b"precious"
    assert (
        main(
            ["-q", "upscale", str(inp), str(out), "--model", str(mdir / "sr2.onnx"), "--overwrite"]
        )
        == 0
    )
    assert read_image(out)[0].shape == (12, 12, 3)


def test_preview_left_source_lanczos_right_processed(tmp_path, mdir):
    src = rand((16, 20, 3), 3)
    inp, out = tmp_path / "in.exr", tmp_path / "prev.exr"
    write_image(inp, src)
    argv = ["-q", "preview", str(inp), str(out), "--model", str(mdir / "sr2.onnx")]
    assert main([*argv, "--colour-space", "display"]) == 0  # the halves, not the colour, here
    got = read_image(out)[0]
    assert got.shape == (32, 40, 3)
    np.testing.assert_allclose(got[:, 22:], np_sr(src, 2)[:, 22:], atol=1e-5)
    np.testing.assert_allclose(
        got[:, :18], resize(src[:, :10], 32, 20, "lanczos3")[:, :18], atol=1e-5
    )
    assert (got[:, 19:21] == 1.0).all()  # the divider


def test_preview_from_a_video_frame(tmp_path, mdir):
    import av

    path = tmp_path / "clip.mkv"
    frames = [np.full((16, 24, 3), 40 * i, np.uint8) for i in range(4)]
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = 24, 16, "bgr0"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    out = tmp_path / "prev.png"
    assert (
        main(
            [
                "-q",
                "preview",
                str(path),
                str(out),
                "--frame",
                "2",
                "--model",
                str(mdir / "sr2.onnx"),
            ]
        )
        == 0
    )
    got = read_image(out)[0]
    assert got.shape == (32, 48, 3)
    centre = got[8:24, 30:40].astype(int)
    assert np.abs(centre - 80).max() <= 1  # frame 2 is flat grey 80; the blur keeps it
    assert (
        run_cli(
            "preview",
            str(path),
            str(out) + ".png",
            "--frame",
            "9",
            "--model",
            str(mdir / "sr2.onnx"),
        ).returncode
        == 2
    )


def test_models_list_and_info(tmp_path, mdir, monkeypatch, capsys):
    monkeypatch.setenv("KWAFLUX_MODELS_DIR", str(mdir))
    assert main(["models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (
        rows["sr4"]["kind"] == "sr"
        and rows["sr4"]["scale"] == 4
        and rows["sr4"]["builtin"] is False
    )
    assert rows["dn"]["kind"] == "denoise"
    assert main(["models", "info", "dn", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["noise_input"] == "noise_level" and info["max_noise"] == 0.2 and info["scale"] == 1
    assert main(["models", "info", str(tmp_path / "nope.onnx")]) == 2


def test_exr_is_read_as_linear_and_keeps_its_highlights(tmp_path, capsys):
    src = np.full((16, 16, 3), 0.18, np.float32)
    src[6:10, 6:10] = 4.0  # two stops over display white, as scene-linear EXRs hold
    inp, out = tmp_path / "in.exr", tmp_path / "out.exr"
    write_image(inp, src)
    assert main(["upscale", str(inp), str(out), "--scale", "2", "--denoise", "0"]) == 0
    assert "colour space linear (.exr holds scene-linear light)" in capsys.readouterr().out
    got = read_image(out)[0]
    assert got[14:18, 14:18].min() > 3.5 and np.isfinite(got).all()
    assert abs(float(got[:4, :4].mean()) - 0.18) < 0.01  # mid grey stays mid grey


def test_unknown_colour_space_is_one_line_listing_the_choices(tmp_path, capsys):
    inp = tmp_path / "in.png"
    write_image(inp, from_float(rand((8, 8, 3)), np.dtype(np.uint8)))
    with pytest.raises(SystemExit) as exc:
        main(["upscale", str(inp), str(tmp_path / "o.png"), "--colour-space", "rec2020-pq"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--colour-space must be one of auto, display, linear, acescg" in err
    assert "'rec2020-pq'" in err
    assert not (tmp_path / "o.png").exists()


def test_a_tagged_video_read_as_log_warns_and_the_option_wins(tmp_path, mdir, caplog):
    import json

    from tests.support.media import make_video

    clip = make_video(tmp_path / "c.mkv", 3, codec="ffv1", color=True)
    out, report = tmp_path / "o.mkv", tmp_path / "r.json"
    argv = ["upscale", str(clip), str(out), "--model", str(mdir / "sr2.onnx"), "--denoise", "0",
            "--codec", "ffv1", "--colour-space", "arri-logc3", "--report", str(report),
            "--progress", "none"]  # fmt: skip
    with caplog.at_level("WARNING", logger="kwaflux_ofx"):
        assert main(argv) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "arri-logc3" in warned[0] and "bt709" in warned[0]
    clips = json.loads(report.read_text())["clips"]
    assert clips[0]["colour_space"] == "arri-logc3"
