"""import-ncnn: a small ncnn model built here, converted, checked against numpy and ncnn."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from kwaflux_ofx import cli
from kwaflux_ofx.errors import KwafluxError, ModelError
from kwaflux_ofx.tools.ncnn.convert import import_ncnn
from kwaflux_ofx.tools.ncnn.parser import parse_param
from kwaflux_ofx.tools.ncnn.weights import TAG_FP16

RNG = np.random.default_rng(7)


def _flagged(arr: np.ndarray, fp16: bool) -> bytes:
    """A tagged weight buffer, padded to 4 bytes, as ncnn's .bin stores it."""
    if fp16:
        data = struct.pack("<I", TAG_FP16) + arr.astype("<f2").tobytes()
    else:
        data = struct.pack("<I", 0) + arr.astype("<f4").tobytes()
    return data + b"\0" * (-len(data) % 4)


def _raw(arr: np.ndarray) -> bytes:
    return arr.astype("<f4").tobytes()


def _round16(arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float16).astype(np.float32)


# -- numpy reference ops (NCHW without batch: C, H, W) -------------------------------------------
def conv2d(x, w, b, pad, stride=1):
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # C,H,W,k,k
    win = win[:, ::stride, ::stride]
    return np.einsum("chwij,ocij->ohw", win, w) + b[:, None, None]


def deconv2d(x, w, b, stride, pad):
    """Transposed convolution; w is (in, out, k, k)."""
    cin, h, wd = x.shape
    k = w.shape[2]
    full = np.zeros((w.shape[1], (h - 1) * stride + k, (wd - 1) * stride + k), np.float64)
    for i in range(h):
        for j in range(wd):
            full[:, i * stride : i * stride + k, j * stride : j * stride + k] += np.einsum(
                "c,coij->oij", x[:, i, j], w
            )
    out = full[:, pad : full.shape[1] - pad, pad : full.shape[2] - pad]
    return out + b[:, None, None]


def pixel_shuffle(x, r):
    c, h, w = x.shape
    return (
        x.reshape(c // (r * r), r, r, h, w)
        .transpose(0, 3, 1, 4, 2)
        .reshape(c // (r * r), h * r, w * r)
    )


def bilinear_x2(x):
    """Half-pixel bilinear upscale by 2 with edge clamping."""
    c, h, w = x.shape

    def axis_weights(n):
        src = (np.arange(2 * n) + 0.5) / 2 - 0.5
        src = np.clip(src, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, src - lo

    ylo, yhi, fy = axis_weights(h)
    xlo, xhi, fx = axis_weights(w)
    rows = x[:, ylo, :] * (1 - fy)[None, :, None] + x[:, yhi, :] * fy[None, :, None]
    return rows[:, :, xlo] * (1 - fx)[None, None, :] + rows[:, :, xhi] * fx[None, None, :]


def prelu(x, slope):
    return np.where(x > 0, x, x * slope[:, None, None])


def leaky(x, a):
    return np.where(x > 0, x, x * a)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> dict:
    """conv+leaky -> PReLU -> (conv -> pixel shuffle) + deconv + bilinear(input), all x2."""
    d = tmp_path_factory.mktemp("ncnn")
    w1 = _round16(RNG.normal(0, 0.3, (8, 3, 3, 3)))
    b1 = RNG.normal(0, 0.1, 8).astype(np.float32)
    slope = RNG.uniform(0.05, 0.3, 8).astype(np.float32)
    w2 = RNG.normal(0, 0.2, (12, 8, 3, 3)).astype(np.float32)
    b2 = RNG.normal(0, 0.1, 12).astype(np.float32)
    # ncnn keeps deconvolution weights as [out][in][kh][kw].
    wd_ncnn = _round16(RNG.normal(0, 0.2, (3, 8, 4, 4)))
    bd = RNG.normal(0, 0.1, 3).astype(np.float32)
    param = "\n".join(
        [
            "7767517",
            "11 13",
            "Input in0 0 1 in0",
            "Split sp0 1 2 in0 in_a in_b",
            "Convolution conv1 1 1 in_a c1 0=8 1=3 4=1 5=1 6=216 9=2 -23310=1,1.000000e-01",
            "PReLU prelu1 1 1 c1 p1 0=8",
            "Split sp1 1 2 p1 p1a p1b",
            "Convolution conv2 1 1 p1a c2 0=12 1=3 4=1 5=1 6=864",
            "PixelShuffle ps 1 1 c2 ps0 0=2",
            "Deconvolution dc 1 1 p1b dc0 0=3 1=4 3=2 4=1 5=1 6=384",
            "Interp up 1 1 in_b up0 0=2 1=2.000000e+00 2=2.000000e+00",
            "BinaryOp add0 2 1 ps0 dc0 s0 0=0",
            "BinaryOp add1 2 1 s0 up0 out0 0=0",
        ]
    )
    weights = b"".join(
        [
            _flagged(w1, fp16=True),
            _raw(b1),
            _raw(slope),
            _flagged(w2, fp16=False),
            _raw(b2),
            _flagged(wd_ncnn, fp16=True),
            _raw(bd),
        ]
    )
    (d / "m.param").write_text(param)
    (d / "m.bin").write_bytes(weights)

    def reference(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        p1 = prelu(leaky(conv2d(x, w1, b1, 1), 0.1), slope)
        ps = pixel_shuffle(conv2d(p1, w2, b2, 1), 2)
        dc = deconv2d(p1, wd_ncnn.transpose(1, 0, 2, 3), bd, 2, 1)
        return ps + dc + bilinear_x2(x)

    return dict(dir=d, param=d / "m.param", bin=d / "m.bin", reference=reference)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x[None].astype(np.float32)})[0][0]


def _ncnn_output(ncnn, model: dict, x: np.ndarray) -> np.ndarray:
    """What the ncnn runtime itself gives for `x` (C, H, W) from the model's .param and .bin:
    one CPU thread, float32 all through."""
    net = ncnn.Net()
    for opt in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 1
    assert net.load_param(str(model["param"])) == 0
    assert net.load_model(str(model["bin"])) == 0
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(x))
    ret, mat = ex.extract("out0")
    assert ret == 0
    return np.array(mat)


def test_converted_graph_matches_numpy_reference(small_model, tmp_path):
    out = tmp_path / "m.onnx"
    res = import_ncnn(small_model["param"], small_model["bin"], out)
    assert res.geometry.scale == 2 and res.geometry.pad == 0 and res.geometry.multiple == 1
    for shape in ((3, 13, 17), (3, 24, 9)):
        x = RNG.uniform(0, 1, shape).astype(np.float32)
        y = _run(out, x)
        ref = small_model["reference"](x)
        assert y.shape == ref.shape == (3, 2 * shape[1], 2 * shape[2])
        assert np.abs(y - ref).max() <= 1e-4


def test_metadata_is_what_the_engine_reads(small_model, tmp_path):
    from kwaflux_ofx import ModelSpec

    out = tmp_path / "m.onnx"
    import_ncnn(small_model["param"], small_model["bin"], out, name="tiny", license="MIT")
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["kwaflux.kind"] == "sr"
    assert meta["kwaflux.scale"] == "2"
    assert meta["kwaflux.channels"] == "3"
    assert meta["kwaflux.range"] == "0-1"
    assert meta["kwaflux.name"] == "tiny"
    assert meta["kwaflux.license"] == "MIT"
    # conv 3x3 (1 px) then conv 3x3 / deconv k4 s2 (1 more px) on the PReLU output.
    assert meta["kwaflux.receptive_field"] == "2"
    # conv 3->8 3x3, conv 8->12 3x3, deconv 8->3 4x4 (stride 2, counted per input pixel).
    assert meta["kwaflux.macs_per_pixel"] == str(3 * 8 * 9 + 8 * 12 * 9 + 8 * 3 * 16)
    spec = ModelSpec.from_onnx(out)
    assert (spec.kind, spec.scale, spec.channels, spec.pad) == ("sr", 2, 3, 0)
    # Height and width stay symbolic, so any frame size runs.
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims][2:] == ["H", "W"]


def test_engine_runs_the_imported_model(small_model, tmp_path):
    """The converted file is an ordinary model for the engine: same pixels as onnxruntime, also
    when the engine cuts the frame into 32 px tiles (the receptive field metadata is right)."""
    from kwaflux_ofx import Engine

    out = tmp_path / "m.onnx"
    import_ncnn(small_model["param"], small_model["bin"], out)
    frame = RNG.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    direct = _run(out, frame.transpose(2, 0, 1) / 255.0).transpose(1, 2, 0)
    want = np.clip(np.round(direct * 255.0), 0, 255)
    for tile in (None, 32):
        got = Engine(device="cpu", tile=tile, threads=1).process(frame, scale=2, sr_model=str(out))
        assert got.shape == (140, 180, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want).max() <= 1


def test_valid_convolution_gets_edge_padding_baked_in(tmp_path):
    """A model that shrinks its input (like waifu2x photo) still maps H x W to 2H x 2W."""
    w = RNG.normal(0, 0.3, (12, 3, 3, 3)).astype(np.float32)
    (tmp_path / "v.param").write_text(
        "7767517\n3 3\nInput in0 0 1 in0\n"
        "Convolution c 1 1 in0 c0 0=12 1=3 5=0 6=324\nPixelShuffle ps 1 1 c0 out0 0=2\n"
    )
    (tmp_path / "v.bin").write_bytes(_flagged(w, fp16=False))
    out = tmp_path / "v.onnx"
    res = import_ncnn(tmp_path / "v.param", tmp_path / "v.bin", out)
    assert (res.geometry.scale, res.geometry.pad) == (2, 1)
    x = RNG.uniform(0, 1, (3, 10, 7)).astype(np.float32)
    y = _run(out, x)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge").astype(np.float64)
    ref = pixel_shuffle(conv2d(xp, w, np.zeros(12), 0), 2)
    assert y.shape == (3, 20, 14)
    assert np.abs(y - ref).max() <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["kwaflux.pad"] == "0" and meta["kwaflux.ncnn_prepad"] == "1"

    # Real-CUGAN x4 style: the wrapper adds the nearest-upscaled input to the output.
    res_out = tmp_path / "v_res.onnx"
    import_ncnn(tmp_path / "v.param", tmp_path / "v.bin", res_out, add_input="nearest")
    nearest = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    assert np.abs(_run(res_out, x) - (ref + nearest)).max() <= 1e-4


def test_matches_ncnn_runtime(small_model, tmp_path):
    ncnn = pytest.importorskip("ncnn", reason="ncnn runtime not installed (pip install .[eval])")
    out = tmp_path / "m.onnx"
    import_ncnn(small_model["param"], small_model["bin"], out)
    x = RNG.uniform(0, 1, (3, 15, 11)).astype(np.float32)
    assert np.abs(_run(out, x) - _ncnn_output(ncnn, small_model, x)).max() <= 1e-4


def test_cli_writes_model_and_refuses_to_overwrite(small_model, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    args = ["models", "import-ncnn", str(small_model["param"]), str(small_model["bin"]), "-o"]
    assert cli.main([*args, str(out)]) == 0
    assert "sr x2" in capsys.readouterr().out
    before = out.read_bytes()
    assert cli.main([*args, str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_bad_inputs_give_one_clear_error(small_model, tmp_path):
    bad = tmp_path / "bad.param"
    bad.write_text("not a param file\n")
    with pytest.raises(ModelError, match="bad.param: not an ncnn text .param"):
        parse_param(bad)

    short = tmp_path / "short.bin"
    short.write_bytes(small_model["bin"].read_bytes()[:100])
    with pytest.raises(ModelError, match="short.bin: weight file too short"):
        import_ncnn(small_model["param"], short, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()

    odd = tmp_path / "odd.param"
    odd.write_text("7767517\n2 2\nInput in0 0 1 in0\nLSTM l 1 1 in0 out0 0=4\n")
    with pytest.raises(KwafluxError, match=r"odd.param: line 4: LSTM l: .*not supported"):
        import_ncnn(odd, small_model["bin"], tmp_path / "y.onnx")


@pytest.fixture(scope="module")
def se_model(tmp_path_factory) -> dict:
    """CUNet-like: valid conv, stride-2 conv, squeeze-excitation (global pool, InnerProduct,
    Scale), deconv, both Crop forms, Eltwise with coeffs, Concat, nearest Interp, scalar mul."""
    d = tmp_path_factory.mktemp("ncnn_se")
    w1, b1 = RNG.normal(0, 0.4, (4, 3, 3, 3)), RNG.normal(0, 0.1, 4)
    w2, b2 = RNG.normal(0, 0.4, (4, 4, 2, 2)), RNG.normal(0, 0.1, 4)
    f1, fb1 = RNG.normal(0, 0.5, (2, 4)), RNG.normal(0, 0.1, 2)
    f2, fb2 = RNG.normal(0, 0.5, (4, 2)), RNG.normal(0, 0.1, 4)
    wd, bd = RNG.normal(0, 0.4, (4, 4, 2, 2)), RNG.normal(0, 0.1, 4)  # ncnn [out][in][kh][kw]
    w3, b3 = RNG.normal(0, 0.4, (3, 8, 1, 1)), RNG.normal(0, 0.1, 3)
    arrays = [w1, b1, w2, b2, f1, fb1, f2, fb2, wd, bd, w3, b3]
    w1, b1, w2, b2, f1, fb1, f2, fb2, wd, bd, w3, b3 = (a.astype(np.float32) for a in arrays)
    lines = [
        "Input in0 0 1 in0",
        "Convolution c1 1 1 in0 c1 0=4 1=3 5=1 6=108 9=1",
        "Split s1 1 2 c1 c1a c1b",
        "Convolution c2 1 1 c1a c2 0=4 1=2 3=2 5=1 6=64",
        "Split s2 1 2 c2 c2a c2b",
        "Pooling gap 1 1 c2b g 0=1 4=1",
        "InnerProduct fc1 1 1 g f1 0=2 1=1 2=8 9=1",
        "InnerProduct fc2 1 1 f1 f2 0=4 1=1 2=8 9=4",
        "Scale se 2 1 c2a f2 se 0=-233",
        "Deconvolution d1 1 1 se d1 0=4 1=2 3=2 5=1 6=64",
        "Crop cr1 1 1 c1b cr1 -23309=2,1,1 -23310=2,-1,-1 -23311=2,1,2",
        "Split s3 1 3 cr1 cr1a cr1b cr1c",
        "Crop cr2 2 1 d1 cr1a cr2 0=1 1=1",
        "Eltwise e 2 1 cr1b cr2 e 0=1 -23301=2,5.000000e-01,2.000000e+00",
        "Concat cat 2 1 e cr1c cat 0=0",
        "Convolution c3 1 1 cat c3 0=3 1=1 5=1 6=24",
        "Interp up 1 1 c3 up 0=1 1=2.000000e+00 2=2.000000e+00",
        "BinaryOp half 1 1 up out0 0=2 1=1 2=5.000000e-01",
    ]
    blobs = {b for ln in lines for b in ln.split()[4 : 4 + int(ln.split()[2]) + int(ln.split()[3])]}
    (d / "se.param").write_text(f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n")
    (d / "se.bin").write_bytes(
        b"".join(
            [
                _flagged(w1, False),
                _raw(b1),
                _flagged(w2, False),
                _raw(b2),
                _flagged(f1, False),
                _raw(fb1),
                _flagged(f2, False),
                _raw(fb2),
                _flagged(wd, False),
                _raw(bd),
                _flagged(w3, False),
                _raw(b3),
            ]
        )  # fmt: skip
    )

    def reference(x: np.ndarray) -> np.ndarray:
        c1 = np.maximum(conv2d(x.astype(np.float64), w1, b1, 0), 0)
        c2 = conv2d(c1, w2, b2, 0, stride=2)
        g = c2.mean(axis=(1, 2))
        v = 1 / (1 + np.exp(-(f2 @ np.maximum(f1 @ g + fb1, 0) + fb2)))
        dc = deconv2d(c2 * v[:, None, None], wd.transpose(1, 0, 2, 3), bd, 2, 0)
        cr1 = c1[:, 1:-1, 1:-1]
        cr2 = dc[:, 1 : 1 + cr1.shape[1], 1 : 1 + cr1.shape[2]]
        cat = np.concatenate([0.5 * cr1 + 2.0 * cr2, cr1])
        c3 = conv2d(cat, w3, b3, 0)
        return 0.5 * np.repeat(np.repeat(c3, 2, axis=1), 2, axis=2)

    return dict(param=d / "se.param", bin=d / "se.bin", reference=reference)


def test_se_block_crops_and_concat_match_numpy(se_model, tmp_path):
    out = tmp_path / "se.onnx"
    res = import_ncnn(se_model["param"], se_model["bin"], out)
    # Output is 2 * (n - 4): 2 px of edge padding per side are built in.
    assert (res.geometry.scale, res.geometry.pad) == (2, 2)
    assert res.global_context
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["kwaflux.global_context"] == "1"
    for shape in ((3, 12, 16), (3, 11, 14)):
        x = RNG.uniform(0, 1, shape).astype(np.float32)
        g = res.geometry
        eh, ew = ((g.residue - (n + 2 * g.pad)) % g.multiple for n in shape[1:])
        xp = np.pad(x, ((0, 0), (2, 2 + eh), (2, 2 + ew)), mode="edge")
        ref = se_model["reference"](xp)[:, : 2 * shape[1], : 2 * shape[2]]
        y = _run(out, x)
        assert y.shape == (3, 2 * shape[1], 2 * shape[2])
        assert np.abs(y - ref).max() <= 1e-4


def test_se_model_matches_ncnn_runtime(se_model):
    ncnn = pytest.importorskip("ncnn", reason="ncnn runtime not installed (pip install .[eval])")
    x = RNG.uniform(0, 1, (3, 14, 18)).astype(np.float32)
    # Our numpy reference is checked against ncnn itself on the unpadded graph.
    assert np.abs(se_model["reference"](x) - _ncnn_output(ncnn, se_model, x)).max() <= 1e-4
