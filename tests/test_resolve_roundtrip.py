"""The Resolve round trip against the scripting stand-in: export, conform, import media, import
timeline, resolution; and every failure answer Resolve can give."""

from __future__ import annotations

import json
import os
import runpy
import sys
import types
from pathlib import Path

import pytest

from kwaflux_ofx import settings
from kwaflux_ofx.hosts.resolve import install as resolve_cli
from kwaflux_ofx.hosts.resolve import roundtrip as rt
from tests.support.media import decode_indices, make_video
from tests.support.resolve_standin import FakeResolve, isolate_kwaflux, resolve_with_project

W, H = 64, 36
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated config/conform folders and stand-in models by name (see isolate_kwaflux)."""
    return isolate_kwaflux(tmp_path, monkeypatch)


def project_with_timeline(root: Path, name: str = "Cut 1") -> tuple[FakeResolve, list]:
    """A project whose current timeline uses two sources, one of them twice. Returns the app and
    the timeline's (media path, media-local first frame, duration) per item."""
    src = root / "footage"
    a = make_video(src / "A001.mov", 40, start_tc="01:00:00:00", size=(W, H))
    b = make_video(src / "B002.mov", 30, start_tc="02:00:10:00", first_index=500, size=(W, H))
    app = resolve_with_project("Round Trip", W, H, 24.0)
    project = app.project_manager.project
    pool = project.media_pool
    ma, mb = pool.ImportMedia([str(a), str(b)])
    cut = [(ma, 5, 14), (mb, 3, 10), (ma, 30, 35)]
    tl = pool.CreateTimelineFromClips(
        name, [{"mediaPoolItem": m, "startFrame": s, "endFrame": e} for m, s, e in cut]
    )
    assert tl and project.SetCurrentTimeline(tl)
    app.calls.clear()
    return app, [(m.path, s, e - s + 1) for m, s, e in cut]


def first_index(m, s):
    """The index a source frame shows: B002's frames start at 500."""
    return s + (500 if m.endswith("B002.mov") else 0)


def check_linked(app: FakeResolve, report: dict, cut: list, scale: int = 2) -> None:
    """The new timeline is current, at the upscaled size, and each item shows the same source
    frames as the original cut, from the conformed media in the settings bin."""
    project = app.project_manager.project
    new = project.GetCurrentTimeline()
    assert new.GetName() == report["resolve"]["timeline"]
    assert new.GetSetting("timelineResolutionWidth") == str(W * scale)
    assert new.GetSetting("timelineResolutionHeight") == str(H * scale)
    assert app.offline_clips == []
    assert report["resolve"]["offline"] == [] and report["resolve"]["warnings"] == []
    items = new.GetItemListInTrack("video", 1)
    assert len(items) == len(cut)
    media_dir = report["media_dir"]
    for item, (src, s, n) in zip(items, cut, strict=True):
        mpi = item.GetMediaPoolItem()
        path = mpi.GetClipProperty("File Path")
        assert os.path.dirname(path) == media_dir
        assert mpi.GetClipProperty("Resolution") == f"{W * scale}x{H * scale}"
        indices, size, _ = decode_indices(path)
        assert size == (W * scale, H * scale)
        k0 = item.GetSourceStartFrame()
        assert item.GetDuration() == n
        assert indices[k0 : k0 + n] == [first_index(src, s) + k for k in range(n)]


def test_round_trip_links_every_clip_to_upscaled_media(env):
    app, cut = project_with_timeline(env)
    report = rt.run(app, scale=2, denoise=0.0, on_progress=None)

    assert report["summary"]["done"] == 3
    r = report["resolve"]
    assert r["bin"] == "Kwaflux x2 dn0.00 prores_422hq"
    assert r["timeline"] == "Cut 1 (Kwaflux x2 dn0.00 prores_422hq)"
    assert r["resolution"] == [2 * W, 2 * H]
    assert r["imported_media"] == 2  # A001 used twice is rendered once
    check_linked(app, report, cut)

    # Order and arguments: export, then media into the bin, then the timeline from that bin.
    order = [
        m
        for m in app.methods()
        if m in ("Export", "ImportMedia", "ImportTimelineFromFile", "SetSetting")
    ]
    assert order[:3] == ["Export", "ImportMedia", "ImportTimelineFromFile"]
    export = next(a for k, m, a in app.calls if m == "Export")
    assert export[1:] == (FakeResolve.EXPORT_OTIO, FakeResolve.EXPORT_NONE)
    _, opts = next(a for k, m, a in app.calls if m == "ImportTimelineFromFile")
    project = app.project_manager.project
    bin_ = project.media_pool.root.subfolders[0]
    assert bin_.name == r["bin"]
    assert opts == {
        "timelineName": r["timeline"],
        "importSourceClips": False,
        "sourceClipsFolders": [bin_],
    }
    assert sorted(c.path for c in bin_.clips) == sorted({c["output"] for c in report["clips"]})
    # The source timeline is untouched and still there.
    assert project.GetTimelineByIndex(1).GetName() == "Cut 1"
    assert project.GetTimelineCount() == 2

    # The new timeline is current now: running on it again is refused (it would upscale twice).
    with pytest.raises(rt.RoundTripError, match="already a Kwaflux conform"):
        rt.run(app, scale=2, on_progress=None)

    # A rerun on the source resumes: nothing rendered again, nothing imported twice.
    assert project.SetCurrentTimeline(project.GetTimelineByIndex(1))
    again = rt.run(app, scale=2, denoise=0.0, on_progress=None)
    assert again["resolve"]["imported_media"] == 0
    assert again["resolve"]["timeline"] == "Cut 1 (Kwaflux x2 dn0.00 prores_422hq) 2"
    assert all("earlier run" in c["reason"] for c in again["clips"])
    assert len(bin_.clips) == 2
    check_linked(app, again, cut)


def test_image_sequences_import_as_clips(env):
    app, cut = project_with_timeline(env)
    events = []
    report = rt.run(
        app, scale=2, codec="exr", media_dir=str(env / "exr_out"), on_progress=events.append
    )
    assert report["media_dir"] == str(env / "exr_out")
    media = [a[0] for k, m, a in app.calls if m == "ImportMedia"][0]
    assert all(isinstance(i, dict) and "%07d" in i["FilePath"] for i in media)
    project = app.project_manager.project
    new = project.GetCurrentTimeline()
    assert app.offline_clips == [] and report["resolve"]["offline"] == []
    for item, (_, _, n) in zip(new.GetItemListInTrack("video", 1), cut, strict=True):
        mpi = item.GetMediaPoolItem()
        assert mpi.GetClipProperty("Type") == "Image Sequence"
        assert mpi.GetClipProperty("Resolution") == f"{2 * W}x{2 * H}"
        assert item.GetDuration() == n
    # Progress arrived as conform's JSON events, ending with the summary.
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish" and "unit_done" in kinds
    assert events[-1]["summary"]["done"] == 3


def test_importing_the_timeline_before_its_media_leaves_clips_offline(env):
    """The stand-in shows the pitfall the round trip avoids (so the tests above can fail)."""
    app, _ = project_with_timeline(env)
    report = rt.run(app, scale=2, codec="ffv1", on_progress=None)
    fresh = resolve_with_project("Other", W, H)
    pool = fresh.project_manager.project.media_pool
    tl = pool.ImportTimelineFromFile(report["output_timeline"], {"importSourceClips": False})
    assert tl is not None
    assert len(fresh.offline_clips) == 3
    assert all(i.GetMediaPoolItem() is None for i in tl.GetItemListInTrack("video", 1))
    # Media imported, then deleted from disk: offline as well.
    out = report["clips"][0]["output"]
    pool.ImportMedia([out])
    os.remove(out)
    fresh.offline_clips.clear()
    pool.ImportTimelineFromFile(
        report["output_timeline"], {"timelineName": "again", "importSourceClips": False}
    )
    assert fresh.offline_clips


def test_failures_before_the_conform(env):
    app = resolve_with_project()
    with pytest.raises(rt.RoundTripError, match="GetCurrentTimeline"):
        rt.run(app, on_progress=None)
    app.project_manager.project = None
    with pytest.raises(rt.RoundTripError, match="GetCurrentProject"):
        rt.run(app, on_progress=None)
    with pytest.raises(rt.RoundTripError, match="scripting API is not available"):
        rt.run(None, on_progress=None)
    with pytest.raises(rt.RoundTripError, match="scale must be 1, 2 or 4"):
        rt.run(app, scale=3, on_progress=None)
    with pytest.raises(rt.RoundTripError, match="codec must be one of"):
        rt.run(app, codec="mpeg2", on_progress=None)
    with pytest.raises(rt.RoundTripError, match="does not exist"):
        rt.run(app, python=str(env / "no" / "python"), on_progress=None)

    app, _ = project_with_timeline(env)
    tl = app.project_manager.project.GetCurrentTimeline()
    tl.Export = lambda *a: False  # e.g. a Resolve older than 18.5, or an unwritable folder
    with pytest.raises(rt.RoundTripError, match=r"Timeline.Export\(.*\) failed"):
        rt.run(app, on_progress=None)
    assert "ImportMedia" not in app.methods()


def test_missing_source_media_imports_nothing(env):
    app, cut = project_with_timeline(env)
    os.remove(cut[1][0])
    with pytest.raises(rt.RoundTripError, match="1 missing .*nothing imported") as info:
        rt.run(app, codec="ffv1", on_progress=None)
    assert info.value.report["summary"]["missing"] == 1
    assert "ImportMedia" not in app.methods() and "ImportTimelineFromFile" not in app.methods()


def test_resolve_refusals_after_the_conform(env):
    app, _ = project_with_timeline(env)
    pool = app.project_manager.project.media_pool
    # Resolve cannot read the new media: ImportMedia answers [].
    pool.ImportMedia = lambda items: []
    with pytest.raises(rt.RoundTripError, match="ImportMedia did not import 2 of 2"):
        rt.run(app, codec="ffv1", on_progress=None)
    assert "ImportTimelineFromFile" not in app.methods()
    del pool.ImportMedia

    # The timeline import fails: None. (The rerun resumes the finished media.)
    pool.ImportTimelineFromFile = lambda path, opts: None
    with pytest.raises(rt.RoundTripError, match="ImportTimelineFromFile.*failed"):
        rt.run(app, codec="ffv1", on_progress=None)
    del pool.ImportTimelineFromFile

    # A resolution Resolve refuses is a warning, not a failure: the clips are in.
    real = pool.ImportTimelineFromFile

    def refusing(path, opts):
        tl = real(path, opts)
        tl.SetSetting = lambda name, value: False
        return tl

    pool.ImportTimelineFromFile = refusing
    report = rt.run(app, codec="ffv1", on_progress=None)
    assert report["resolve"]["offline"] == []
    assert any("Timeline Settings" in w for w in report["resolve"]["warnings"])


def test_menu_script_after_install(env, capsys):
    """`kwaflux resolve install` writes the menu script with this venv's Python; run as Resolve
    runs it (globals `resolve`, no UIManager), it uses the remembered settings and saves them."""
    from kwaflux_ofx.cli import main

    dest = env / "Scripts" / "Edit"
    assert main(["resolve", "install", "--dest", str(dest)]) == 0
    script = dest / "Kwaflux Conform.py"
    text = script.read_text()
    assert f"VENV_PYTHON = {sys.executable!r}" in text
    assert f"ROUNDTRIP_MODULE = {str(resolve_cli.ROUNDTRIP)!r}" in text
    config = json.loads((env / "config" / "resolve.json").read_text())
    assert config["python"] == sys.executable

    rt.save_settings({"scale": 2, "denoise": 0.25, "codec": "ffv1", "media_dir": None})
    app, cut = project_with_timeline(env)
    capsys.readouterr()
    runpy.run_path(str(script), init_globals={"resolve": app}, run_name="__main__")
    out = capsys.readouterr().out
    assert "3 clips conformed" in out and "error" not in out
    new = app.project_manager.project.GetCurrentTimeline()
    assert new.GetName() == "Cut 1 (Kwaflux x2 dn0.25 ffv1)"
    assert app.offline_clips == []
    saved = json.loads((env / "config" / "resolve.json").read_text())
    assert saved["settings"] == {"scale": 2, "denoise": 0.25, "codec": "ffv1", "media_dir": None}
    assert saved["python"] == sys.executable

    # Without a Resolve object the script says so in one line and does nothing else.
    runpy.run_path(str(script), init_globals={"resolve": None}, run_name="__main__")
    assert "scripting API is not available" in capsys.readouterr().out


def test_settings_file_survives_bad_content(env):
    path = Path(rt.config_path())
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert rt.load_settings() == rt.DEFAULT_SETTINGS
    path.write_text(json.dumps({"settings": {"scale": 3, "denoise": 2, "codec": "x"}}))
    assert rt.load_settings() == rt.DEFAULT_SETTINGS
    rt.save_settings({"scale": 4, "denoise": 0.5, "codec": "exr", "media_dir": "/m"})
    assert rt.load_settings() == {"scale": 4, "denoise": 0.5, "codec": "exr", "media_dir": "/m"}


def test_scripts_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert resolve_cli.scripts_dir(platform="win32") == (
        tmp_path
        / "Roaming"
        / "Blackmagic Design"
        / "DaVinci Resolve"
        / "Support"
        / "Fusion"
        / "Scripts"
        / "Edit"
    )
    assert str(resolve_cli.scripts_dir(system=True, platform="darwin")).startswith(
        "/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts"
    )
    assert resolve_cli.scripts_dir(platform="linux") == (
        Path.home() / ".local/share/DaVinciResolve/Fusion/Scripts/Edit"
    )


def test_install_refuses_an_unwritable_folder(env, tmp_path):
    from kwaflux_ofx.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["resolve", "install", "--dest", str(blocker / "Edit")]) == 2


def test_resolve_side_needs_only_the_standard_library(tmp_path):
    """Resolve's Python has none of our packages: the menu script and the round-trip module
    must load and report in a Python that sees only the standard library (-I -S)."""
    import subprocess

    script = ROOT / "kwaflux_ofx" / "hosts" / "resolve" / "scripts" / "Kwaflux Conform.py"
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(script)!r}, init_globals={{'resolve': None}})\n"
        "mods = sorted(m.split('.')[0] for m in sys.modules)\n"
        "print('third-party:', [m for m in ('numpy', 'opentimelineio', 'kwaflux_ofx', 'av')"
        " if m in mods])\n"
    )
    env = {
        "KWAFLUX_ROUNDTRIP": str(resolve_cli.ROUNDTRIP),
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "scripting API is not available" in proc.stdout
    assert "third-party: []" in proc.stdout


def test_conform_command_drives_a_running_resolve(env, monkeypatch, capsys):
    """`kwaflux resolve conform` (Resolve Studio, external scripting) through Resolve's own
    DaVinciResolveScript module, here answering with the stand-in."""
    import types

    from kwaflux_ofx.cli import main

    app, cut = project_with_timeline(env)
    module = types.ModuleType("DaVinciResolveScript")
    module.scriptapp = lambda name: app if name == "Resolve" else None
    monkeypatch.setitem(sys.modules, "DaVinciResolveScript", module)
    assert main(["resolve", "conform", "--scale", "2", "--codec", "ffv1"]) == 0
    assert "3 clips conformed" in capsys.readouterr().out
    new = app.project_manager.project.GetCurrentTimeline()
    assert new.GetName() == "Cut 1 (Kwaflux x2 dn0.00 ffv1)" and app.offline_clips == []
    assert rt.load_settings()["codec"] == "ffv1"  # remembered for the next run

    # No Resolve listening: one line, exit code 2, nothing touched.
    module.scriptapp = lambda name: None
    assert main(["resolve", "conform"]) == 2
    assert "External scripting" in capsys.readouterr().err


class _Widget:
    """A UIManager element: keeps its properties; combo boxes keep their items."""

    def __init__(self, props):
        self.__dict__.update(props)
        self.items = []
        self.CurrentIndex = 0

    def AddItems(self, items):  # noqa: N802 - Fusion's UIManager names
        self.items += items

    @property
    def CurrentText(self):  # noqa: N802
        return self.items[self.CurrentIndex]


class _UI:
    """Just enough of Fusion's UIManager to run the settings dialog: the user changes the
    fields listed in `answers`, then clicks the button `click`."""

    def __init__(self, answers, click):
        self.answers, self.click, self.widgets = answers, click, {}

    def __getattr__(self, kind):  # ui.Label({...}), ui.VGroup([...]), ...
        def make(arg):
            if isinstance(arg, dict) and "ID" in arg:
                self.widgets[arg["ID"]] = _Widget(arg)
            return arg

        return make

    def dispatcher(self):
        ui = self

        class Handlers:
            def __init__(self):
                self.OK, self.Cancel, self.KwafluxConform = (
                    types.SimpleNamespace() for _ in range(3)
                )

        class Window:
            On = Handlers()

            def GetItems(self):  # noqa: N802
                return ui.widgets

            def Show(self):  # noqa: N802
                pass

            def Hide(self):  # noqa: N802
                pass

        class Dispatcher:
            def AddWindow(self, props, layout):  # noqa: N802
                self.win = Window()
                return self.win

            def RunLoop(self):  # noqa: N802
                for wid, value in ui.answers.items():
                    setattr(ui.widgets[wid], *value)
                getattr(self.win.On, ui.click).Clicked(None)

            def ExitLoop(self):  # noqa: N802
                pass

        return Dispatcher()


@pytest.mark.parametrize("click", ["OK", "Cancel"])
def test_menu_script_dialog(env, capsys, click):
    from kwaflux_ofx.cli import main

    dest = env / "Scripts"
    assert main(["resolve", "install", "--dest", str(dest)]) == 0
    app, _ = project_with_timeline(env)
    ui = _UI(
        {
            "Scale": ("CurrentIndex", 1),
            "Codec": ("CurrentIndex", list(settings.CODECS).index("ffv1")),
            "Denoise": ("Value", 0.2),
            "MediaDir": ("Text", str(env / "chosen")),
        },
        click,
    )
    app.Fusion = lambda: types.SimpleNamespace(UIManager=ui)
    bmd = types.SimpleNamespace(UIDispatcher=lambda manager: ui.dispatcher())
    runpy.run_path(str(dest / "Kwaflux Conform.py"), init_globals={"resolve": app, "bmd": bmd})
    out = capsys.readouterr().out
    assert ui.widgets["Scale"].items == ["1", "2", "4"]
    if click == "Cancel":
        assert "cancelled" in out and "Export" not in app.methods()
        return
    assert "3 clips conformed" in out, out
    assert rt.load_settings() == {
        "scale": 2,
        "denoise": 0.2,
        "codec": "ffv1",
        "media_dir": str(env / "chosen"),
    }
    assert (env / "chosen" / "A001.mkv").is_file()
