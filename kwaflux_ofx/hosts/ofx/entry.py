"""The Python side of the OFX plugin: the C++ shell calls render() once per frame, and measure()
when the user asks what noise the frame under the playhead has."""

from __future__ import annotations

import functools
import logging
import time

import numpy as np

from kwaflux_ofx import settings
from kwaflux_ofx.engine import Engine
from kwaflux_ofx.engine.cache import shared_engine
from kwaflux_ofx.engine.engine import MIN_TILE, from_float, to_float
from kwaflux_ofx.engine.resample import resize
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.hosts.ofx import colour

log = logging.getLogger(__name__)

UNPREMULTIPLIED = "OfxImageAlphaUnPremultiplied"
Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in OFX pixel coordinates (y counts up)

_log_configured = False


def configure_logging(path: str) -> None:
    """Send this package's warnings to the plugin's per-user log file (called once at start-up)."""
    global _log_configured
    if _log_configured:
        return
    try:
        handler: logging.Handler = logging.FileHandler(path)
    except OSError as exc:
        # An unwritable log folder must not stop the plugin; stderr reaches the host's console.
        handler = logging.StreamHandler()
        log.warning("cannot write the log file %s (%s); logging to stderr", path, exc.strerror)
    handler.setFormatter(logging.Formatter("%(asctime)s [python] %(name)s: %(message)s"))
    pkg = logging.getLogger("kwaflux_ofx")
    pkg.addHandler(handler)
    if pkg.level == logging.NOTSET or pkg.level > logging.INFO:
        pkg.setLevel(logging.INFO)
    _log_configured = True


def _rows(bounds: Rect, y1: int, y2: int) -> slice:
    """Rows of a top-down view (row 0 = top = bounds y2 - 1) covering OFX y in [y1, y2)."""
    return slice(bounds[3] - y2, bounds[3] - y1)


def _cols(bounds: Rect, x1: int, x2: int) -> slice:
    return slice(x1 - bounds[0], x2 - bounds[0])


def _place(img: np.ndarray, img_b: Rect, dst: np.ndarray, dst_b: Rect, win: Rect) -> None:
    """Copy the part of `img` (at img_b) inside `win` into `dst` (at dst_b); zero what it misses."""
    x1, y1 = max(img_b[0], dst_b[0], win[0]), max(img_b[1], dst_b[1], win[1])
    x2, y2 = min(img_b[2], dst_b[2], win[2]), min(img_b[3], dst_b[3], win[3])
    wx1, wy1 = max(dst_b[0], win[0]), max(dst_b[1], win[1])
    wx2, wy2 = min(dst_b[2], win[2]), min(dst_b[3], win[3])
    if (x1, y1, x2, y2) != (wx1, wy1, wx2, wy2) and wx2 > wx1 and wy2 > wy1:
        dst[_rows(dst_b, wy1, wy2), _cols(dst_b, wx1, wx2)] = 0
    if x2 <= x1 or y2 <= y1:
        return
    dst[_rows(dst_b, y1, y2), _cols(dst_b, x1, x2)] = img[
        _rows(img_b, y1, y2), _cols(img_b, x1, x2)
    ]


def _scaled(b: Rect, s: int) -> Rect:
    return (b[0] * s, b[1] * s, b[2] * s, b[3] * s)


def _engine_args(params: dict) -> tuple[Engine, int, dict]:
    device = str(params.get("device", "Auto")).lower()
    if device not in ("auto", "cuda", "cpu"):
        raise KwafluxError(f"unknown device {params.get('device')!r}")
    tile = int(params.get("tileSize", 0))
    engine = shared_engine(device, tile=None if tile <= 0 else max(MIN_TILE, tile))
    model = str(params.get("model", "")).strip() or None
    # Straight alpha only when the host says so; OFX images are premultiplied by default.
    premultiplied = params.get("premultiplication") != UNPREMULTIPLIED
    common = {"premultiplied": premultiplied, "colour": _colour_space(params)}
    if params["effect"] == "denoise":
        strength = _strength(params, "autoStrength", "strength")
        kwargs = {"scale": 1, "denoise": strength, "denoise_model": model}
        return engine, 1, kwargs | common
    scale = _effect_scale(params.get("scale", f"{settings.SR_EFFECT_SCALES[0]}x"))
    kwargs = {"scale": scale, "denoise": _strength(params, "autoDenoise", "denoise")}
    return engine, scale, kwargs | {"sr_model": _sr_model(params, scale, model)} | common


def _sr_model(params: dict, scale: int, model: str | None) -> str | None:
    """The SR effect's Look choice (its label, "Detail") with the Model field: a look other than
    the default names its built-in model (models/registry.py)."""
    from kwaflux_ofx.models.registry import sr_model_for

    look = params.get("look", settings.SR_LOOK_DEFAULT.label)
    try:
        chosen = settings.check_sr_look(look, "look")
    except ValueError as exc:
        raise KwafluxError(str(exc)) from None
    return sr_model_for(scale, chosen, model)


def _colour_space(params: dict) -> settings.ColourSpace:
    """The input colour space (hosts/ofx/colour.py), logged once per space and reason."""
    space, why = colour.resolve(params)
    _log_colour_once(space.label, why)
    return space


@functools.lru_cache(maxsize=64)
def _log_colour_once(label: str, why: str) -> None:
    log.info("input colour space %s (%s)", label, why)


def _strength(params: dict, auto_key: str, slider_key: str) -> float | str:
    """The effect's checkbox on: "auto" (the engine measures each frame); off: the slider."""
    if params.get(auto_key):
        return settings.DENOISE_AUTO
    return float(params[slider_key])


def measure(src: np.ndarray, params: dict) -> str:
    """One line for the effect's "Measured" label: the noise of `src` (a top-down view of the
    host's source image) and the strength Auto picks for it."""
    engine, _, kwargs = _engine_args(params)
    auto = engine.auto_strength(
        [src], denoise_model=kwargs.get("denoise_model"), colour=kwargs["colour"]
    )
    return auto.describe()


def _effect_scale(choice) -> int:
    """The SR effect's scale choice, as the shell passes it (its label, "2x"), or its index."""
    if isinstance(choice, int) and 0 <= choice < len(settings.SR_EFFECT_SCALES):
        return settings.SR_EFFECT_SCALES[choice]
    scale = str(choice).strip().rstrip("x")
    if not scale.isdigit() or int(scale) not in settings.SR_EFFECT_SCALES:
        raise KwafluxError(f"unknown scale choice {choice!r}")
    return int(scale)


def _window(
    src: np.ndarray, neighbours, params: dict, kwargs: dict
) -> tuple[list[np.ndarray], int] | None:
    """The frames the denoiser sees, in time order, and the index of `src` among them; None
    when the frame is rendered alone (radius 0, denoise off, or no neighbour came)."""
    radius = int(params.get("temporalRadius", 0))
    denoising = kwargs["denoise"] == settings.DENOISE_AUTO or kwargs["denoise"] > 0
    if radius <= 0 or not denoising or not neighbours:
        return None
    # The shell fetches only within the radius; a stray offset is dropped, not trusted.
    near = sorted((int(k), f) for k, f in neighbours if k != 0 and abs(int(k)) <= radius)
    if not near:
        return None
    before = [f for k, f in near if k < 0]
    return before + [src] + [f for k, f in near if k > 0], len(before)


def render(src: np.ndarray, dst: np.ndarray, params: dict, neighbours=()) -> float:
    """Render one frame into `dst`; returns the seconds spent in the Engine.

    `src` and `dst` are top-down views (row 0 = top) of the host's buffers, with the host's
    strides: never keep a reference after returning, the host frees them.
    `params` holds the effect's parameters plus window, src_bounds, dst_bounds (pixel rects),
    render_scale and host_multires.
    `neighbours` holds (offset, view) pairs: the source frames around this one in time
    (offset -temporalRadius..temporalRadius, never 0), read-only views like `src`, the frames
    the host could not give left out. With the denoise stage on they go to the engine's
    temporal path (process_window); otherwise the frame is rendered alone.
    """
    engine, scale, kwargs = _engine_args(params)
    src_b: Rect = tuple(params["src_bounds"])
    dst_b: Rect = tuple(params["dst_bounds"])
    win: Rect = tuple(params["window"])
    if src.size == 0 or dst.size == 0 or win[2] <= win[0] or win[3] <= win[1]:
        return 0.0
    window = _window(src, neighbours, params, kwargs)
    t0 = time.perf_counter()
    sr = params["effect"] == "sr"
    if sr and not params.get("host_multires", True):
        before = src
        before_b = src_b
        source_scale = float(params["sourceScale"])
        out = _timeline_resolution_sr(engine, src, scale, kwargs, source_scale, window)
        _place(out, src_b, dst, dst_b, win)
    else:
        out_b = _scaled(src_b, scale)
        if out_b == dst_b and win == dst_b:
            # The common case: the engine writes straight into the host's buffer.
            if window:
                engine.process_window_into(*window, dst, **kwargs)
            else:
                engine.process_into(src, dst, **kwargs)
        else:
            out = (
                engine.process_window(*window, **kwargs)
                if window
                else engine.process(src, **kwargs)
            )
            _place(out, out_b, dst, dst_b, win)
        before, before_b = src, src_b
        if sr and params.get("splitView"):
            before = np.repeat(np.repeat(src, scale, axis=0), scale, axis=1)
            before_b = out_b
    if sr and params.get("splitView"):
        # Before on the left half of the window, after on the right.
        half = (win[0], win[1], win[0] + (win[2] - win[0]) // 2, win[3])
        _place(before, before_b, dst, dst_b, half)
    return time.perf_counter() - t0


def _timeline_resolution_sr(
    engine: Engine,
    src: np.ndarray,
    scale: int,
    kwargs: dict,
    source_scale: float,
    window: tuple[list[np.ndarray], int] | None = None,
) -> np.ndarray:
    """Hosts without multi-resolution (Resolve): output stays at timeline size.

    The host already enlarged the source to the timeline; bring it back to the size the source
    had (source_scale x timeline, 0 = 1/scale), run the SR model up, and fit the result to the
    timeline frame. A temporal `window` (frames, index of src) is brought back alike.
    """
    h, w = src.shape[:2]
    if not 0.0 <= source_scale <= 1.0:  # NaN fails this too; a script can send any number
        raise KwafluxError(f"source scale must be between 0 and 1, not {source_scale}")
    ss = source_scale if source_scale > 0 else 1.0 / scale
    sh, sw = max(1, round(h * ss)), max(1, round(w * ss))

    def shrink(frame: np.ndarray) -> np.ndarray:
        frame = to_float(frame)
        return frame if (sh, sw) == (h, w) else resize(frame, sh, sw, "area")

    if window:
        frames, centre = window
        up = engine.process_window([shrink(f) for f in frames], centre, **kwargs)
    else:
        up = engine.process(shrink(src), **kwargs)
    if up.shape[:2] != (h, w):
        up = resize(up, h, w, "lanczos3")
    return from_float(up, src.dtype)


def doctor() -> str:
    """What works in this interpreter: packages, providers, models, and a real test render."""
    import onnxruntime

    import kwaflux_ofx
    from kwaflux_ofx.models.registry import list_models

    lines = [
        f"kwaflux_ofx {kwaflux_ofx.__version__} from {kwaflux_ofx.__file__}",
        f"numpy {np.__version__}, onnxruntime {onnxruntime.__version__}",
        "providers available: " + ", ".join(onnxruntime.get_available_providers()),
    ]
    models = list_models()
    lines.append("models: " + (", ".join(m.name for m in models) or "none"))
    engine = shared_engine("auto")
    frame = np.linspace(0, 1, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    try:
        out = engine.process(frame, scale=2)
        lines.append(f"test render x2: ok {frame.shape[:2]} -> {out.shape[:2]}")
        lines.append("providers in use: " + ", ".join(engine.providers))
    except KwafluxError as exc:
        lines.append(f"test render x2: FAILED: {exc}")
    return "\n".join(lines)
