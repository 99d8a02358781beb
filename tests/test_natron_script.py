"""kwaflux_ofx/hosts/natron/kwaflux_upscale.py: the graph it builds uses the plugin's real identifiers and
parameters, and that graph, rendered through the bundle in the test host, upscales."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from kwaflux_ofx.hosts.ofx import install as ofx_tools
from tests.support.ofx import run_host, sr_x2_model

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "kwaflux_ofx" / "hosts" / "natron" / "kwaflux_upscale.py"
HOST_BUILT = ofx_tools.test_host_path().is_file() and ofx_tools.installed_bundle().is_dir()


class Param:
    def __init__(self, node, name):
        self.node, self.name = node, name

    def setValue(self, value):  # noqa: N802 - Natron's API names
        self.node.values[self.name] = value


class Node:
    def __init__(self, kind, arg):
        self.kind, self.arg = kind, arg
        self.name, self.values, self.inputs = None, {}, {}

    def setScriptName(self, name):  # noqa: N802
        self.name = name
        return True

    def getParam(self, name):  # noqa: N802
        return Param(self, name)

    def connectInput(self, index, node):  # noqa: N802
        self.inputs[index] = node
        return True


class App:
    """Records what the script asks of NatronRenderer's `app`."""

    def __init__(self):
        self.nodes = []

    def _add(self, kind, arg):
        self.nodes.append(Node(kind, arg))
        return self.nodes[-1]

    def createReader(self, path):  # noqa: N802
        return self._add("reader", path)

    def createWriter(self, path):  # noqa: N802
        return self._add("writer", path)

    def createNode(self, plugin_id):  # noqa: N802
        return self._add("node", plugin_id)


def run_script(**settings) -> App:
    app = App()
    runpy.run_path(str(SCRIPT), init_globals={"app": app, **settings})
    return app


def plugin_choices(name: str) -> list[str]:
    """A choice's labels in stored order, from the plugin source (the value is the index)."""
    src = (ROOT / "bridge" / "plugin.cpp").read_text()
    m = re.search(name + r" = \{([^}]*)\}", src)
    return re.findall(r'"([^"]*)"', m.group(1))


def test_graph_uses_the_plugins_own_names(tmp_path):
    app = run_script(
        kw_in="/in/plate.####.exr",
        kw_out="/out/plate.####.exr",
        kw_scale=4,
        kw_denoise=0.3,
        kw_device="cpu",
    )
    reader, effect, writer = app.nodes
    assert (reader.kind, reader.arg, reader.name) == ("reader", "/in/plate.####.exr", "KwafluxRead")
    assert (effect.arg, effect.name) == ("org.kwaflux.SuperResolution", "KwafluxSR")
    assert (writer.arg, writer.name) == ("/out/plate.####.exr", "KwafluxWrite")
    assert effect.inputs == {0: reader} and writer.inputs == {0: effect}
    assert writer.values == {"formatType": 0}
    assert plugin_choices("kScales")[effect.values["scale"]] == "4x"
    assert plugin_choices("kDevices")[effect.values["device"]] == "CPU"
    assert effect.values["denoise"] == 0.3 and effect.values["model"] == ""
    if HOST_BUILT:
        proc = run_host(["--plugin", "org.kwaflux.SuperResolution", "--list"], tmp_path)
        described = dict(re.findall(r"^param (\w+) type=(\w+)", proc.stdout, re.M))
        kinds = {
            "scale": "OfxParamTypeChoice",
            "device": "OfxParamTypeChoice",
            "denoise": "OfxParamTypeDouble",
            "model": "OfxParamTypeString",
        }
        assert {k: described.get(k) for k in effect.values} == kinds


def test_settings_from_the_environment_and_bad_settings(monkeypatch):
    monkeypatch.setenv("KWAFLUX_IN", "/a.mov")
    monkeypatch.setenv("KWAFLUX_OUT", "/b.mov")
    monkeypatch.setenv("KWAFLUX_SCALE", "2")
    app = run_script()
    assert app.nodes[1].values["scale"] == 0 and app.nodes[0].arg == "/a.mov"
    with pytest.raises(ValueError, match="kw_scale must be 2 or 4, not 3"):
        run_script(kw_scale=3)
    monkeypatch.delenv("KWAFLUX_IN")
    with pytest.raises(ValueError, match="set kw_in and kw_out"):
        run_script()


@pytest.mark.skipif(not HOST_BUILT, reason="OFX bundle not built")
def test_the_scripts_graph_renders_through_the_bundle(tmp_path):
    """The effect node with exactly the parameter values the script set, rendered by the test
    host as a multi-resolution host (like Natron) renders it: the output is 2x the input."""
    model = sr_x2_model(tmp_path / "x2.onnx")
    app = run_script(kw_in="in", kw_out="out", kw_scale=2, kw_model=str(model), kw_device="cpu")
    effect = app.nodes[1]
    img = np.random.default_rng(0).random((9, 13, 4), dtype=np.float32)
    np.save(tmp_path / "in.npy", img)
    args = [
        "--plugin",
        effect.arg,
        "--input",
        str(tmp_path / "in.npy"),
        "--output",
        str(tmp_path / "out.npy"),
    ]
    for k, v in effect.values.items():
        args += ["--param", f"{k}={v}"]
    proc = run_host(args, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (18, 26, 4)
