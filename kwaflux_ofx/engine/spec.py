"""What a model is: kind, scale, channels, range, noise input, receptive field — read or probed."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import numpy as np

from kwaflux_ofx import settings
from kwaflux_ofx.errors import ModelError, first_line

log = logging.getLogger(__name__)

META_PREFIX = "kwaflux."
# Receptive radius assumed when probing cannot bound it (a model with a global op).
PROBE_SIZES = (48, 96)
# The learned temporal model (engine/temporal.py): a window of frames in, the middle one out;
# the engine runs it itself, never as a user's denoise or SR model.
TEMPORAL_KIND = "temporal-denoise"
KINDS = ("sr", "denoise", TEMPORAL_KIND)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A fully-convolutional NCHW image model as the engine uses it."""

    path: Path
    name: str
    kind: str  # "sr" | "denoise" | "temporal-denoise"
    scale: int
    channels: int
    value_range: tuple[float, float]
    input_name: str
    output_name: str
    noise_input: str | None = None
    max_noise: float = 0.0
    receptive_field: int = 16  # radius in input pixels
    pad: int = 0  # edge padding the model expects (ncnn waifu2x style)
    alignment: int = 1  # the model groups pixels in blocks of this size (pixel-unshuffle)
    input_dtype: str = "float32"
    probed: bool = False
    metadata: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)

    @property
    def global_context(self) -> bool:
        """The model pools over the whole image, so a tile cannot see all it needs."""
        return self.metadata.get("global_context") == "1"

    @property
    def takes_noise_level(self) -> bool:
        return self.noise_input is not None

    @property
    def noise_calibrated(self) -> bool:
        """The noise-level input means the RMS of the damage (`kwaflux.noise_level=rms`), so a
        measured noise level converts to a strength: what automatic strength needs."""
        return self.takes_noise_level and self.metadata.get("noise_level") == "rms"

    @classmethod
    def from_onnx(cls, path: str | os.PathLike) -> ModelSpec:
        """Read a model's spec from its metadata; probe with small inputs what the metadata lacks."""
        path = Path(path)
        import onnx

        if not path.is_file():
            raise ModelError("model file not found", path)
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and friends
            raise ModelError(f"not a readable ONNX model ({type(exc).__name__})", path) from None
        graph = model.graph
        inits = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if not inputs or not graph.output:
            raise ModelError("ONNX model has no inputs or outputs", path)
        meta = {
            p.key[len(META_PREFIX) :]: p.value
            for p in model.metadata_props
            if p.key.startswith(META_PREFIX)
        }

        def dims(value_info) -> list:
            t = value_info.type.tensor_type
            if not t.HasField("shape"):
                return []
            return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]

        noise_name = meta.get("noise_input") or None
        image_inputs = [i for i in inputs if i.name != noise_name]
        if len(image_inputs) != 1:
            raise ModelError(
                f"expected one image input, found {len(image_inputs)} "
                f"({', '.join(i.name for i in image_inputs)})",
                path,
            )
        image_in = image_inputs[0]
        shape = dims(image_in)
        if shape and len(shape) != 4:
            raise ModelError(
                f"input '{image_in.name}' has rank {len(shape)}, expected 4 (NCHW)", path
            )
        if noise_name is None:
            extra = [i for i in inputs if i is not image_in]
            if extra:
                raise ModelError(
                    f"unexpected extra input(s) {[i.name for i in extra]} without "
                    "kwaflux.noise_input metadata",
                    path,
                )
        elem = image_in.type.tensor_type.elem_type
        input_dtype = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}.get(
            elem
        )
        if input_dtype is None:
            raise ModelError(f"input '{image_in.name}' is not float32/float16", path)
        try:
            channels = (
                int(meta["channels"]) if "channels" in meta else (shape[1] if shape else None)
            )
            rng = parse_range(meta.get("range", "0-1"))
            spec = dict(
                path=path,
                name=meta.get("name", path.name.removesuffix(".onnx")),
                kind=meta.get("kind", ""),
                scale=int(meta["scale"]) if "scale" in meta else 0,
                channels=channels or 3,
                value_range=(rng[0], rng[1]),
                input_name=image_in.name,
                output_name=graph.output[0].name,
                noise_input=noise_name,
                max_noise=float(meta.get("max_noise", 0.0)),
                receptive_field=int(meta["receptive_field"]) if "receptive_field" in meta else -1,
                pad=int(meta.get("pad", 0)),
                alignment=max(1, int(meta.get("alignment", 1))),
                input_dtype=input_dtype,
                metadata=meta,
            )
        except (ValueError, IndexError) as exc:
            # Metadata is user-editable text: a typo must read as one clear line, not a traceback.
            raise ModelError(f"unreadable kwaflux metadata ({exc})", path) from None
        if channels is not None and channels not in (1, 3):
            raise ModelError(f"input has {channels} channels; image models take 3 (RGB)", path)
        if not spec["scale"] or spec["receptive_field"] < 0 or not spec["kind"]:
            spec.update(_probe(spec))
            spec["probed"] = True
        if spec["kind"] not in KINDS:
            raise ModelError(
                f"kwaflux.kind must be 'sr', 'denoise' or '{TEMPORAL_KIND}', not {spec['kind']!r}",
                path,
            )
        if spec["scale"] not in settings.SCALES:
            raise ModelError(
                f"unsupported scale x{spec['scale']} (kwaflux takes {settings.scales_text()})", path
            )
        return cls(**spec)


_RANGE = re.compile(
    r"^\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*(?:-|,|\.\.|to)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$"
)


def parse_range(text: str) -> tuple[float, float]:
    """'0-1', '0-255', '-1-1', '-1..1' or '-1,1' -> (lo, hi); lo must be below hi."""
    m = _RANGE.match(text)
    if not m or float(m.group(1)) >= float(m.group(2)):
        raise ValueError(f"kwaflux.range {text!r} is not 'low-high'")
    return float(m.group(1)), float(m.group(2))


def _run_probe(sess, spec: dict, x: np.ndarray) -> np.ndarray:
    feeds = {spec["input_name"]: x.astype(spec["input_dtype"])}
    if spec["noise_input"]:
        feeds[spec["noise_input"]] = np.full(
            (1, 1) + x.shape[2:], spec["max_noise"] * 0.5, dtype=spec["input_dtype"]
        )
    out = sess.run([spec["output_name"]], feeds)[0]
    return np.asarray(out, dtype=np.float32)


def _probe(spec: dict) -> dict:
    """Find scale, kind and receptive radius by running the model on small inputs."""
    import onnxruntime as ort

    path = spec["path"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"onnxruntime cannot load it: {first_line(exc)}", path) from None
    lo, hi = spec["value_range"]
    found: dict = {}
    for size in PROBE_SIZES:
        rng = np.random.default_rng(0)
        x = (lo + (hi - lo) * rng.uniform(0.25, 0.75, (1, spec["channels"], size, size))).astype(
            np.float32
        )
        try:
            y = _run_probe(sess, spec, x)
        except Exception as exc:
            raise ModelError(f"probe run failed: {first_line(exc)}", path) from None
        if y.ndim != 4:
            raise ModelError(f"output has rank {y.ndim}, expected 4 (NCHW)", path)
        # A model that expects edge padding may crop it away itself: accept either size.
        scale = None
        for eff in dict.fromkeys((size, size - 2 * spec["pad"])):
            sh, sw = y.shape[2] / eff, y.shape[3] / eff
            if round(sh) >= 1 and abs(sh - round(sh)) < 1e-6 and sh == sw:
                scale = int(round(sh))
                break
        if scale is None:
            raise ModelError(
                f"output {tuple(y.shape[2:])} is not an integer multiple of input {(size, size)}",
                path,
            )
        found["scale"] = spec["scale"] or scale
        found["kind"] = spec["kind"] or ("denoise" if scale == 1 else "sr")
        if spec["receptive_field"] >= 0:
            found["receptive_field"] = spec["receptive_field"]
            return found
        # Perturb the centre pixel; the receptive radius is how far the output changes.
        x2 = x.copy()
        c = size // 2
        x2[:, :, c, c] += 0.2 * (hi - lo)
        d = np.abs(_run_probe(sess, spec, x2) - y).max(axis=(0, 1))
        ys, xs = np.nonzero(d > 1e-6 * max(hi - lo, 1.0))
        if len(ys) == 0:
            found["receptive_field"] = 0
            return found
        oc = (c + 0.5) * scale
        radius = int(np.ceil(max(np.abs(ys + 0.5 - oc).max(), np.abs(xs + 0.5 - oc).max()) / scale))
        if radius < c - 1:
            found["receptive_field"] = radius + 1
            return found
    log.warning(
        "%s: receptive field wider than %d px; tiles will be blended", path, PROBE_SIZES[-1]
    )
    found["receptive_field"] = PROBE_SIZES[-1] // 2
    return found
