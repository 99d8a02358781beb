"""NatronRenderer script: Read -> Kwaflux Super Resolution -> Write, for headless batch renders.

    NatronRenderer kwaflux_ofx/hosts/natron/kwaflux_upscale.py \
        -c "kw_in='/shots/sh010/plate.####.exr'; kw_out='/shots/sh010/up/plate.####.exr'" \
        -c "kw_scale=2; kw_denoise=0.3" \
        -w KwafluxWrite 1001-1100

Settings come from `-c` variables (kw_in, kw_out, kw_scale 2|4, kw_denoise 0..1, kw_model,
kw_device auto|cuda|cpu) or from the environment (KWAFLUX_IN, KWAFLUX_OUT, KWAFLUX_SCALE,
KWAFLUX_DENOISE, KWAFLUX_MODEL, KWAFLUX_DEVICE). Give the frame range on the command line:
headless, the reader does not always find a sequence's range by itself.

Natron supports multi-resolution, so the effect's output really is `scale` times the input;
the writer is set to write the input stream's format (the upscaled size), not the project's.
This file runs inside Natron's own Python 3 (not the kwaflux venv): standard library only.
"""

import importlib.util
import os
import sys


def _package_settings():
    """kwaflux_ofx/settings.py by its path (two folders up): Natron's Python has no kwaflux_ofx."""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
    except NameError:  # a host that runs the text without __file__: the installed package
        from kwaflux_ofx import settings

        return settings
    path = os.path.join(os.path.dirname(os.path.dirname(here)), "settings.py")
    spec = importlib.util.spec_from_file_location("kwaflux_ofx_settings", path)
    module = sys.modules.setdefault("kwaflux_ofx_settings", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


SETTINGS = _package_settings()
PLUGIN_ID = "org.kwaflux.SuperResolution"
# The plugin's "scale" choice stores the option's index: 0 = 2x, 1 = 4x.
SCALE_CHOICES = {scale: i for i, scale in enumerate(SETTINGS.SR_EFFECT_SCALES)}
DEVICE_CHOICES = {"auto": 0, "cuda": 1, "cpu": 2}


def _setting(name, env, default):
    """A `-c` variable if the command line set one, else the environment, else the default."""
    value = globals().get(name)
    if value is None:
        value = os.environ.get(env, default)
    return value


def settings():
    s = {
        "in": _setting("kw_in", "KWAFLUX_IN", ""),
        "out": _setting("kw_out", "KWAFLUX_OUT", ""),
        "scale": int(_setting("kw_scale", "KWAFLUX_SCALE", 2)),
        "denoise": float(_setting("kw_denoise", "KWAFLUX_DENOISE", 0.0)),
        "model": str(_setting("kw_model", "KWAFLUX_MODEL", "")),
        "device": str(_setting("kw_device", "KWAFLUX_DEVICE", "auto")).lower(),
    }
    problems = []
    if not s["in"] or not s["out"]:
        problems.append("set kw_in and kw_out (or KWAFLUX_IN and KWAFLUX_OUT)")
    if s["scale"] not in SCALE_CHOICES:
        problems.append(
            f"kw_scale must be {SETTINGS.scales_text(SETTINGS.SR_EFFECT_SCALES)}, not {s['scale']}"
        )
    try:
        SETTINGS.check_denoise(s["denoise"], "kw_denoise")
    except ValueError as exc:
        problems.append(str(exc))
    if s["device"] not in DEVICE_CHOICES:
        problems.append(f"kw_device must be auto, cuda or cpu, not {s['device']}")
    if problems:
        raise ValueError("kwaflux_upscale.py: " + "; ".join(problems))
    return s


def build(app, s):
    """Create and wire the three nodes; returns (reader, effect, writer)."""
    reader = app.createReader(s["in"])
    reader.setScriptName("KwafluxRead")
    effect = app.createNode(PLUGIN_ID)
    if effect is None:
        raise RuntimeError(
            f"kwaflux_upscale.py: Natron has no {PLUGIN_ID}: install the bundle "
            "(`kwaflux ofx install`) or add its folder to OFX_PLUGIN_PATH"
        )
    effect.setScriptName("KwafluxSR")
    effect.getParam("scale").setValue(SCALE_CHOICES[s["scale"]])
    effect.getParam("denoise").setValue(s["denoise"])
    effect.getParam("model").setValue(s["model"])
    effect.getParam("device").setValue(DEVICE_CHOICES[s["device"]])
    effect.connectInput(0, reader)
    writer = app.createWriter(s["out"])
    writer.setScriptName("KwafluxWrite")
    # 0 = "Input Stream Format": write what the effect outputs (the upscaled size).
    fmt = writer.getParam("formatType")
    if fmt is not None:
        fmt.setValue(0)
    writer.connectInput(0, effect)
    return reader, effect, writer


# NatronRenderer defines `app` (and app1) for the script it runs.
if "app" in globals():
    build(app, settings())  # noqa: F821
