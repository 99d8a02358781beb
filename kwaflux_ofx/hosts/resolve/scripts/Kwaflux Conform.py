"""Workspace > Scripts > Kwaflux Conform: send the current timeline out for an AI upscale and back.

Installed by `kwaflux resolve install`, which fills in the two paths below. Resolve runs this
file in its own Python, which does not have kwaflux's packages; so this script loads only the
standard-library round-trip module by its path, and the conform runs in the venv's Python.
"""

import importlib.util
import os
import sys

# Filled in by `kwaflux resolve install` (KWAFLUX_PYTHON / KWAFLUX_ROUNDTRIP override them).
VENV_PYTHON = None
ROUNDTRIP_MODULE = None


def _load_roundtrip():
    path = os.environ.get("KWAFLUX_ROUNDTRIP") or ROUNDTRIP_MODULE
    if not path or not os.path.isfile(path):
        print(
            f"kwaflux: error: the round-trip module was not found ({path}); run "
            "`<venv>/bin/kwaflux resolve install` again"
        )
        return None
    spec = importlib.util.spec_from_file_location("kwaflux_resolve_roundtrip", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered first, as a normal import would
    spec.loader.exec_module(module)
    return module


def _get_resolve():
    """The scripting app: the menu gives `resolve` (or `app`/`bmd`) as globals; outside the menu,
    Resolve Studio's DaVinciResolveScript module connects to a running Resolve."""
    g = globals()
    if g.get("resolve"):
        return g["resolve"]
    for getter in (lambda: g["app"].GetResolve(), lambda: g["bmd"].scriptapp("Resolve")):
        try:
            found = getter()
        except Exception:  # noqa: BLE001 - any of them may be missing in this Resolve
            found = None
        if found:
            return found
    try:
        import DaVinciResolveScript

        return DaVinciResolveScript.scriptapp("Resolve")
    except Exception:  # noqa: BLE001
        return None


def _ask(settings, resolve):
    """A settings dialog through Fusion's UIManager; None when cancelled. Without a working
    UIManager (some Resolve builds, or outside Resolve), the remembered settings are used."""
    try:
        return _dialog(settings, resolve)
    except Exception as exc:  # noqa: BLE001 - any UI failure falls back to the saved settings
        print(
            f"kwaflux: no settings dialog ({type(exc).__name__}: {exc}); using the "
            f"remembered settings {settings!r}"
        )
        return settings


def _dialog(settings, resolve):
    ui = resolve.Fusion().UIManager
    disp = globals()["bmd"].UIDispatcher(ui)
    scales, codecs = [str(s) for s in RT.SETTINGS.SCALES], list(RT.SETTINGS.CODECS)
    win = disp.AddWindow(
        {
            "ID": "KwafluxConform",
            "WindowTitle": "Kwaflux Conform",
            "Geometry": [200, 200, 460, 190],
        },
        ui.VGroup(
            [
                ui.HGroup([ui.Label({"Text": "Upscale"}), ui.ComboBox({"ID": "Scale"})]),
                ui.HGroup(
                    [
                        ui.Label({"Text": "Denoise (0-1)"}),
                        ui.DoubleSpinBox(
                            {
                                "ID": "Denoise",
                                "Minimum": 0.0,
                                "Maximum": 1.0,
                                "SingleStep": 0.05,
                                "Value": settings["denoise"],
                            }
                        ),
                    ]
                ),
                ui.HGroup([ui.Label({"Text": "Codec"}), ui.ComboBox({"ID": "Codec"})]),
                ui.HGroup(
                    [
                        ui.Label({"Text": "Media folder (empty: default)"}),
                        ui.LineEdit({"ID": "MediaDir", "Text": settings.get("media_dir") or ""}),
                    ]
                ),
                ui.HGroup(
                    [
                        ui.Button({"ID": "Cancel", "Text": "Cancel"}),
                        ui.Button({"ID": "OK", "Text": "Conform"}),
                    ]
                ),
            ]
        ),
    )
    items = win.GetItems()
    items["Scale"].AddItems(scales)
    items["Scale"].CurrentIndex = scales.index(str(settings["scale"]))
    items["Codec"].AddItems(codecs)
    items["Codec"].CurrentIndex = codecs.index(settings["codec"])
    answer = {}

    def ok(ev):
        answer.update(
            scale=int(items["Scale"].CurrentText),
            denoise=float(items["Denoise"].Value),
            codec=items["Codec"].CurrentText,
            media_dir=items["MediaDir"].Text.strip() or None,
        )
        disp.ExitLoop()

    def cancel(ev):
        disp.ExitLoop()

    win.On.OK.Clicked = ok
    win.On.Cancel.Clicked = cancel
    win.On.KwafluxConform.Close = cancel
    win.Show()
    disp.RunLoop()
    win.Hide()
    return answer or None


RT = _load_roundtrip()
if RT is not None:
    _resolve = _get_resolve()
    if _resolve is None:
        print(
            "kwaflux: error: Resolve's scripting API is not available. Run this from "
            "Workspace > Scripts inside Resolve; the free Resolve does not allow external "
            "scripts (see docs/troubleshooting.md)"
        )
    else:
        RT.menu_main(
            _resolve,
            python=os.environ.get("KWAFLUX_PYTHON") or VENV_PYTHON,
            ask=lambda s: _ask(s, _resolve),
        )
