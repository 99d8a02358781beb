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

import os

PLUGIN_ID = "org.kwaflux.SuperResolution"
SCALE_CHOICES = {2: 0, 4: 1}  # the plugin's "scale" choice: 0 = 2x, 1 = 4x
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
        problems.append(f"kw_scale must be 2 or 4, not {s['scale']}")
    if not 0.0 <= s["denoise"] <= 1.0:
        problems.append(f"kw_denoise must be between 0 and 1, not {s['denoise']}")
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
