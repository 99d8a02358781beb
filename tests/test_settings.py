"""settings.py is the one copy of the scales, the denoise range and the codec table: everything
that offers or checks them (the engine, the CLIs, conform, the hosts and the C++ plugin) agrees."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kwaflux_ofx import Engine, KwafluxError, settings
from kwaflux_ofx.cli import build_parser
from kwaflux_ofx.conform.plan import ConformSettings
from kwaflux_ofx.hosts.resolve import roundtrip as rt
from kwaflux_ofx.media.codecs import ENCODERS

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_CPP = ROOT / "bridge" / "plugin.cpp"


def _cpp_double_param(name: str) -> tuple[float, ...]:
    """(default, min, max, display min, display max) of a double parameter in plugin.cpp."""
    text = PLUGIN_CPP.read_text()
    m = re.search(r"\{\"" + name + r"\",\s*kOfxParamTypeDouble,(.*?),\s*\{\}\}\);", text, re.S)
    assert m, f"no double parameter {name} in plugin.cpp"
    numbers = re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", m.group(1).split('",')[-1])
    return tuple(float(n) for n in numbers[-5:])


def test_plugin_scale_choices_are_the_settings():
    m = re.search(r"kScales = \{([^}]*)\}", PLUGIN_CPP.read_text())
    labels = re.findall(r'"([^"]+)"', m.group(1))
    assert labels == [f"{s}x" for s in settings.SR_EFFECT_SCALES]
    assert set(settings.SR_EFFECT_SCALES) <= set(settings.SCALES)


def test_plugin_look_choices_are_the_settings():
    m = re.search(r"kLooks = \{([^}]*)\}", PLUGIN_CPP.read_text())
    labels = re.findall(r'"([^"]+)"', m.group(1))
    assert labels == [look.label for look in settings.SrLook]
    # The default (choice 0) is the faithful model.
    assert labels[0] == settings.SR_LOOK_DEFAULT.label == "Faithful"
    assert re.search(
        r'\{"look", kOfxParamTypeChoice, "Look",[^}]*?0, 0, 0, 0, 0, kLooks\}',
        PLUGIN_CPP.read_text(),
        re.S,
    )


def test_plugin_temporal_radius_is_the_settings():
    text = PLUGIN_CPP.read_text()
    consts = dict(re.findall(r"constexpr int (kTemporalRadius\w+) = (\d+);", text))
    assert int(consts["kTemporalRadiusDefault"]) == settings.TEMPORAL_RADIUS_DEFAULT
    assert int(consts["kTemporalRadiusMax"]) == settings.TEMPORAL_RADIUS_MAX
    # The parameter uses them: default, range 0..max, display range 0..max.
    m = re.search(r"\{\"temporalRadius\",\s*kOfxParamTypeInteger,(.*?),\s*\{\}\}\);", text, re.S)
    assert m, "no integer parameter temporalRadius in plugin.cpp"
    values = [v.strip() for v in m.group(1).split('",')[-1].split(",")][-5:]
    assert values == [
        "kTemporalRadiusDefault",
        "0",
        "kTemporalRadiusMax",
        "0",
        "kTemporalRadiusMax",
    ]


@pytest.mark.parametrize("name", ["strength", "denoise"])
def test_plugin_denoise_range_is_the_settings(name):
    _, lo, hi, display_lo, display_hi = _cpp_double_param(name)
    assert (lo, hi) == (settings.DENOISE_MIN, settings.DENOISE_MAX)
    assert (display_lo, display_hi) == (settings.DENOISE_MIN, settings.DENOISE_MAX)


def _choices(argv: list[str], option: str):
    parser = build_parser()
    sub = parser
    for word in argv:
        sub = next(a for a in sub._actions if a.dest.endswith("command")).choices[word]
    return next(a for a in sub._actions if option in a.option_strings).choices


def test_cli_offers_the_settings():
    for argv in (["upscale"], ["preview"], ["conform"], ["resolve", "conform"]):
        assert tuple(_choices(argv, "--scale")) == settings.SCALES, argv
    for argv in (["conform"], ["resolve", "conform"]):
        assert tuple(_choices(argv, "--codec")) == tuple(settings.CODECS), argv


def test_every_codec_has_an_encoder():
    assert set(ENCODERS) == set(settings.CODECS)


@pytest.mark.parametrize("bad", [0, 3, 8, -2, "x", None, 2.5])
def test_engine_conform_and_roundtrip_refuse_the_same_scales(bad):
    frame = __import__("numpy").zeros((8, 8, 3), "float32")
    with pytest.raises(KwafluxError, match="1, 2 or 4"):
        Engine(device="cpu").process(frame, scale=bad)
    with pytest.raises(KwafluxError, match="1, 2 or 4"):
        ConformSettings(scale=bad)
    with pytest.raises(rt.RoundTripError, match="1, 2 or 4"):
        rt.check_settings(bad, 0.0, settings.DEFAULT_CODEC)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "x"])
def test_denoise_range_is_checked_alike(bad):
    with pytest.raises(KwafluxError, match="between 0 and 1"):
        ConformSettings(denoise=bad)
    with pytest.raises(rt.RoundTripError, match="between 0 and 1"):
        rt.check_settings(2, bad, settings.DEFAULT_CODEC)


def test_host_scripts_read_the_settings_by_path():
    """The Resolve round trip and the Natron script run in host Pythons without the package."""
    code = (
        "import importlib.util, sys\n"
        "sys.path = [p for p in sys.path if 'site-packages' not in p]\n"
        "def load(name, path):\n"
        "    spec = importlib.util.spec_from_file_location(name, path)\n"
        "    mod = importlib.util.module_from_spec(spec)\n"
        "    sys.modules[name] = mod\n"
        "    spec.loader.exec_module(mod)\n"
        "    return mod\n"
        f"rt = load('rt', {str(ROOT / 'kwaflux_ofx/hosts/resolve/roundtrip.py')!r})\n"
        f"nat = load('nat', {str(ROOT / 'kwaflux_ofx/hosts/natron/kwaflux_upscale.py')!r})\n"
        "print(list(rt.SETTINGS.SCALES), list(rt.SETTINGS.CODECS), sorted(nat.SCALE_CHOICES))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    ).stdout.split("]")
    assert out[0].strip("[ ") == ", ".join(map(str, settings.SCALES))
    assert sorted(settings.SR_EFFECT_SCALES) == [int(x) for x in out[2].strip("[ \n").split(",")]


def test_plugin_colour_space_choices_are_the_settings():
    from kwaflux_ofx.hosts.ofx import colour

    text = PLUGIN_CPP.read_text()
    labels = re.findall(r'"([^"]+)"', re.search(r"kColourSpaces = \{([^}]*)\}", text).group(1))
    assert labels == [settings.COLOUR_AUTO_LABEL, *settings.COLOUR_SPACE_LABELS.values()]
    assert [s.label for s in settings.ColourSpace] == labels[1:]
    asked = re.search(r"kPreferredColourspaces = \{([^}]*)\}", text).group(1)
    assert re.findall(r'"([^"]+)"', asked) == list(colour.PREFERRED)
    assert all(name in colour.OFX_COLOURSPACES for name in colour.PREFERRED)
