"""A stand-in for DaVinci Resolve's scripting API, faithful to its documented calls.

Resolve cannot run here, so the round trip is tested against these objects. They follow the
scripting README (names, argument shapes, 1-based indices, False/None on failure, settings as
strings) and behave like Resolve where the round trip depends on it:

- Timeline.Export(path, resolve.EXPORT_OTIO, resolve.EXPORT_NONE) writes a real OTIO file of the
  timeline the test built (record start 01:00:00:00, media references with their timecode).
- MediaPool.ImportMedia probes each file with PyAV (a file it cannot read is not imported, as in
  Resolve) and takes image sequences in the {"FilePath": "x.%07d.exr", ...} clipInfo form.
- MediaPool.ImportTimelineFromFile links each clip to a media pool item: with
  importSourceClips False it looks only in the current folder and sourceClipsFolders, and a clip
  whose media was not imported first, or is no longer on disk, comes in offline
  (GetMediaPoolItem() -> None) and is listed in `resolve.offline_clips`; so does a clip whose
  source timecode range is not inside the linked media's.
- A timeline's resolution follows the project until SetSetting("useCustomSettings", "1").

Every API call is recorded in `resolve.calls` as (object kind, method, args).
"""

from __future__ import annotations

import os
import re
from fractions import Fraction

import opentimelineio as otio


def isolate_kwaflux(root, monkeypatch, *, denoiser: bool = True):
    """Point kwaflux's models, config and conform folders into `root` for one test. The models
    by name are a nearest-neighbour x2 (and, with `denoiser`, a mild smoothing denoiser), so
    every conformed frame still shows its source index. Returns `root`."""
    from tests.support.media import make_nearest_x2
    from tests.support.onnx_models import noise_denoiser

    models = root / "models"
    models.mkdir()
    make_nearest_x2(models / "kwaflux-sr-x2.onnx")
    if denoiser:
        noise_denoiser(models / "kwaflux-denoise.onnx")
    monkeypatch.setenv("KWAFLUX_MODELS_DIR", str(models))
    monkeypatch.setenv("KWAFLUX_CONFIG_DIR", str(root / "config"))
    monkeypatch.setenv("KWAFLUX_CONFORM_DIR", str(root / "conform"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("KWAFLUX_PYTHON", raising=False)
    return root


IMPORT_OPTIONS = {
    "timelineName",
    "importSourceClips",
    "sourceClipsPath",
    "sourceClipsFolders",
    "interlaceProcessing",
}
TIMELINE_FORMATS = {".aaf", ".edl", ".xml", ".fcpxml", ".drt", ".adl", ".otio"}
TIMELINE_SETTINGS = {
    "useCustomSettings",
    "timelineResolutionWidth",
    "timelineResolutionHeight",
    "timelineFrameRate",
    "timelinePixelAspectRatio",
}
_SEQ_PATTERN = re.compile(r"^(?P<prefix>.*)%0(?P<pad>\d+)d(?P<suffix>\.[A-Za-z0-9]+)$")


class _Api:
    """Base: each public call goes through _call, which records it."""

    KIND = "?"

    def __init__(self, app: FakeResolve):
        self._app = app

    def _call(self, method: str, *args):
        self._app.calls.append((self.KIND, method, args))


class MediaPoolItem(_Api):
    KIND = "MediaPoolItem"

    def __init__(self, app, path: str, props: dict):
        super().__init__(app)
        self.path = path
        self._props = {"File Path": path, "File Name": os.path.basename(path), **props}

    def GetName(self):
        self._call("GetName")
        return self._props["File Name"]

    def GetClipProperty(self, propertyName=None):
        self._call("GetClipProperty", propertyName)
        if propertyName is None:
            return dict(self._props)
        return self._props.get(propertyName, "")

    # Stand-in only: where the media is on disk, for linking checks.
    def _covers(self, path: str) -> bool:
        path = os.path.normpath(path)
        if self._props.get("Type") == "Image Sequence":
            return path == os.path.normpath(self._props["_dir"])
        return path == os.path.normpath(self.path)


class Folder(_Api):
    KIND = "Folder"

    def __init__(self, app, name: str):
        super().__init__(app)
        self.name = name
        self.clips: list[MediaPoolItem] = []
        self.subfolders: list[Folder] = []

    def GetName(self):
        self._call("GetName")
        return self.name

    def GetClipList(self):
        self._call("GetClipList")
        return list(self.clips)

    def GetSubFolderList(self):
        self._call("GetSubFolderList")
        return list(self.subfolders)

    def _walk(self):
        yield self
        for f in self.subfolders:
            yield from f._walk()


class TimelineItem(_Api):
    KIND = "TimelineItem"

    def __init__(
        self,
        app,
        name: str,
        mpi: MediaPoolItem | None,
        record: int,
        duration: int,
        source_start: int,
        media_path: str = "",
        generator: bool = False,
    ):
        super().__init__(app)
        self.name, self.mpi, self.record, self.duration = name, mpi, record, duration
        self.source_start, self.media_path, self.generator = source_start, media_path, generator

    def GetName(self):
        self._call("GetName")
        return self.name

    def GetMediaPoolItem(self):
        self._call("GetMediaPoolItem")
        return self.mpi

    def GetStart(self):
        return self.record

    def GetEnd(self):
        return self.record + self.duration

    def GetDuration(self):
        return self.duration

    def GetSourceStartFrame(self):
        return self.source_start

    def GetSourceEndFrame(self):
        return self.source_start + self.duration - 1


class Timeline(_Api):
    KIND = "Timeline"

    def __init__(self, app, project: Project, name: str, rate: float, start_frame: int):
        super().__init__(app)
        self.project, self.name, self.rate, self.start_frame = project, name, rate, start_frame
        self.tracks: list[list[TimelineItem]] = [[]]
        self.settings = {"useCustomSettings": "0"}

    def GetName(self):
        self._call("GetName")
        return self.name

    def GetStartFrame(self):
        return self.start_frame

    def GetEndFrame(self):
        return max([self.start_frame] + [i.GetEnd() for t in self.tracks for i in t])

    def GetTrackCount(self, trackType):
        self._call("GetTrackCount", trackType)
        return len(self.tracks) if trackType == "video" else 0

    def GetItemListInTrack(self, trackType, index):
        self._call("GetItemListInTrack", trackType, index)
        if trackType != "video" or not 1 <= index <= len(self.tracks):
            return None
        return list(self.tracks[index - 1])

    def GetSetting(self, settingName=""):
        self._call("GetSetting", settingName)
        if (
            settingName
            in ("timelineResolutionWidth", "timelineResolutionHeight", "timelineFrameRate")
            and self.settings["useCustomSettings"] != "1"
        ):
            return self.project.settings.get(settingName, "")
        return self.settings.get(settingName, self.project.settings.get(settingName, ""))

    def SetSetting(self, settingName, settingValue):
        self._call("SetSetting", settingName, settingValue)
        if settingName not in TIMELINE_SETTINGS or not isinstance(settingValue, str):
            return False
        if settingName == "useCustomSettings":
            if settingValue not in ("0", "1"):
                return False
        elif self.settings["useCustomSettings"] != "1":
            return False  # the timeline follows the project's settings
        elif settingName.startswith("timelineResolution") and not settingValue.isdigit():
            return False
        if settingName == "useCustomSettings" and settingValue == "1":
            # Custom settings start from the project's values.
            for k in ("timelineResolutionWidth", "timelineResolutionHeight", "timelineFrameRate"):
                self.settings.setdefault(k, self.project.settings[k])
        self.settings[settingName] = settingValue
        return True

    def Export(self, fileName, exportType, exportSubtype=None):
        self._call("Export", fileName, exportType, exportSubtype)
        if exportType != self._app.EXPORT_OTIO:
            return False  # the stand-in writes OTIO only
        if not os.path.isdir(os.path.dirname(os.path.abspath(fileName))):
            return False
        otio.adapters.write_to_file(self._to_otio(), fileName)
        return True

    def _to_otio(self) -> otio.schema.Timeline:
        """What Resolve's OTIO export holds: clips at their source timecode, gaps between."""
        rate = self.rate
        tl = otio.schema.Timeline(name=self.name)
        tl.global_start_time = otio.opentime.RationalTime(self.start_frame, rate)
        for items in self.tracks:
            track = otio.schema.Track(name="Video 1", kind=otio.schema.TrackKind.Video)
            pos = self.start_frame
            for item in sorted(items, key=lambda i: i.record):
                if item.record > pos:
                    track.append(
                        otio.schema.Gap(
                            source_range=otio.opentime.TimeRange(
                                otio.opentime.RationalTime(0, rate),
                                otio.opentime.RationalTime(item.record - pos, rate),
                            )
                        )
                    )
                if item.generator:
                    ref = otio.schema.GeneratorReference(generator_kind="SolidColor")
                    src_start = 0
                else:
                    props = item.mpi._props
                    tc0 = int(props["_start_tc_frames"])
                    ref = otio.schema.ExternalReference(
                        target_url=item.mpi.path,
                        available_range=otio.opentime.TimeRange(
                            otio.opentime.RationalTime(tc0, rate),
                            otio.opentime.RationalTime(int(props["Frames"]), rate),
                        ),
                    )
                    src_start = tc0 + item.source_start
                track.append(
                    otio.schema.Clip(
                        name=item.name,
                        media_reference=ref,
                        source_range=otio.opentime.TimeRange(
                            otio.opentime.RationalTime(src_start, rate),
                            otio.opentime.RationalTime(item.duration, rate),
                        ),
                    )
                )
                pos = item.record + item.duration
            tl.tracks.append(track)
        return tl


class MediaPool(_Api):
    KIND = "MediaPool"

    def __init__(self, app, project: Project):
        super().__init__(app)
        self.project = project
        self.root = Folder(app, "Master")
        self.current = self.root

    def GetRootFolder(self):
        self._call("GetRootFolder")
        return self.root

    def AddSubFolder(self, folder, name):
        self._call("AddSubFolder", folder, name)
        if not isinstance(folder, Folder) or folder not in list(self.root._walk()):
            return None
        if not isinstance(name, str) or not name:
            return None
        sub = Folder(self._app, name)
        folder.subfolders.append(sub)
        return sub

    def GetCurrentFolder(self):
        self._call("GetCurrentFolder")
        return self.current

    def SetCurrentFolder(self, folder):
        self._call("SetCurrentFolder", folder)
        if not isinstance(folder, Folder) or folder not in list(self.root._walk()):
            return False
        self.current = folder
        return True

    def ImportMedia(self, items):
        self._call("ImportMedia", items)
        if not isinstance(items, list):
            return []
        out = []
        for it in items:
            mpi = self._app._probe(it)
            if mpi is not None:
                self.current.clips.append(mpi)
                out.append(mpi)
        return out

    def CreateTimelineFromClips(self, name, clipInfos):
        """clipInfos: [{"mediaPoolItem", "startFrame", "endFrame"}] (endFrame inclusive), laid
        end to end from the timeline start, as Resolve appends them."""
        self._call("CreateTimelineFromClips", name, clipInfos)
        if name in self.project._names():
            return None
        tl = Timeline(self._app, self.project, name, self.project._rate(), 86400)
        pos = tl.start_frame
        for info in clipInfos:
            mpi = info["mediaPoolItem"]
            a, b = int(info["startFrame"]), int(info["endFrame"])
            if not isinstance(mpi, MediaPoolItem) or not 0 <= a <= b < int(mpi._props["Frames"]):
                return None
            tl.tracks[0].append(
                TimelineItem(self._app, mpi.GetName(), mpi, pos, b - a + 1, a, mpi.path)
            )
            pos += b - a + 1
        self.project.timelines.append(tl)
        return tl

    def ImportTimelineFromFile(self, filePath, importOptions=None):
        self._call("ImportTimelineFromFile", filePath, importOptions)
        opts = importOptions or {}
        if not isinstance(opts, dict) or set(opts) - IMPORT_OPTIONS:
            return None
        ext = os.path.splitext(filePath)[1].lower()
        if ext not in TIMELINE_FORMATS or not os.path.isfile(filePath):
            return None
        if ext != ".otio":
            return None  # the stand-in reads OTIO only
        try:
            src = otio.adapters.read_from_file(filePath)
        except Exception:  # noqa: BLE001 - Resolve answers None to a file it cannot read
            return None
        name = opts.get("timelineName") or src.name or os.path.basename(filePath)
        if name in self.project._names():
            return None
        rate = self.project._rate()
        start = src.global_start_time.to_frames() if src.global_start_time else 86400
        tl = Timeline(self._app, self.project, name, rate, start)
        tl.tracks = []
        import_sources = opts.get("importSourceClips", True)
        folders = [self.current] + list(opts.get("sourceClipsFolders") or [])
        for track in src.video_tracks():
            items = []
            for clip in track.find_clips():
                rng = clip.trimmed_range_in_parent()
                record = start + rng.start_time.to_frames()
                ref = clip.media_reference
                if isinstance(ref, otio.schema.GeneratorReference):
                    items.append(
                        TimelineItem(
                            self._app,
                            clip.name,
                            None,
                            record,
                            rng.duration.to_frames(),
                            0,
                            generator=True,
                        )
                    )
                    continue
                path = _reference_path(ref)
                mpi = None
                if import_sources:
                    mpi = self._app._probe(path)
                    if mpi is not None:
                        self.current.clips.append(mpi)
                else:
                    for folder in folders:
                        mpi = next((c for c in folder.clips if c._covers(path)), None)
                        if mpi is not None:
                            break
                if mpi is not None and not os.path.exists(path):
                    mpi = None  # media gone from disk: offline
                if mpi is not None:
                    # Linked by timecode: the cut must lie inside the media's frames.
                    tc0, n = int(mpi._props["_start_tc_frames"]), int(mpi._props["Frames"])
                    first = clip.source_range.start_time.to_frames()
                    if first < tc0 or first + rng.duration.to_frames() > tc0 + n:
                        mpi = None
                if mpi is None:
                    self._app.offline_clips.append((name, clip.name, path))
                tc0 = int(mpi._props["_start_tc_frames"]) if mpi else 0
                items.append(
                    TimelineItem(
                        self._app,
                        clip.name,
                        mpi,
                        record,
                        rng.duration.to_frames(),
                        clip.source_range.start_time.to_frames() - tc0,
                        path,
                    )
                )
            tl.tracks.append(items)
        if not tl.tracks:
            tl.tracks = [[]]
        self.project.timelines.append(tl)
        return tl


def _reference_path(ref) -> str:
    """The local path a media reference names (a folder for an image sequence)."""
    if isinstance(ref, otio.schema.ImageSequenceReference):
        return otio.url_utils.filepath_from_url(ref.target_url_base.rstrip("/"))
    url = ref.target_url
    return otio.url_utils.filepath_from_url(url) if url.startswith("file:") else url


class Project(_Api):
    KIND = "Project"

    def __init__(self, app, name: str, width: int, height: int, rate: float):
        super().__init__(app)
        self.name = name
        self.settings = {
            "timelineResolutionWidth": str(width),
            "timelineResolutionHeight": str(height),
            "timelineFrameRate": f"{rate:g}",
        }
        self.media_pool = MediaPool(app, self)
        self.timelines: list[Timeline] = []
        self.current_timeline: Timeline | None = None

    def _names(self) -> set[str]:
        return {t.name for t in self.timelines}

    def _rate(self) -> float:
        return float(self.settings["timelineFrameRate"])

    def GetName(self):
        self._call("GetName")
        return self.name

    def GetMediaPool(self):
        self._call("GetMediaPool")
        return self.media_pool

    def GetTimelineCount(self):
        self._call("GetTimelineCount")
        return len(self.timelines)

    def GetTimelineByIndex(self, idx):
        self._call("GetTimelineByIndex", idx)
        return self.timelines[idx - 1] if 1 <= idx <= len(self.timelines) else None

    def GetCurrentTimeline(self):
        self._call("GetCurrentTimeline")
        return self.current_timeline

    def SetCurrentTimeline(self, timeline):
        self._call("SetCurrentTimeline", timeline)
        if timeline not in self.timelines:
            return False
        self.current_timeline = timeline
        return True

    def GetSetting(self, settingName=""):
        self._call("GetSetting", settingName)
        return self.settings.get(settingName, "")

    def SetSetting(self, settingName, settingValue):
        self._call("SetSetting", settingName, settingValue)
        if settingName not in self.settings or not isinstance(settingValue, str):
            return False
        self.settings[settingName] = settingValue
        return True


class ProjectManager(_Api):
    KIND = "ProjectManager"

    def __init__(self, app):
        super().__init__(app)
        self.project: Project | None = None

    def GetCurrentProject(self):
        self._call("GetCurrentProject")
        return self.project

    def CreateProject(self, projectName):
        self._call("CreateProject", projectName)
        if self.project is not None and self.project.name == projectName:
            return None
        self.project = Project(self._app, projectName, 1920, 1080, 24.0)
        return self.project


class FakeResolve(_Api):
    """The `resolve` object. Export constants as the API exposes them."""

    KIND = "Resolve"
    EXPORT_AAF, EXPORT_DRT, EXPORT_EDL, EXPORT_FCP_7_XML = 0, 1, 2, 3
    EXPORT_OTIO = 17
    EXPORT_NONE = 100

    def __init__(self):
        self.calls: list[tuple] = []
        self.offline_clips: list[tuple[str, str, str]] = []
        super().__init__(self)
        self.project_manager = ProjectManager(self)

    def GetProjectManager(self):
        self._call("GetProjectManager")
        return self.project_manager

    def GetProductName(self):
        return "DaVinci Resolve Studio"

    def GetVersion(self):
        return [19, 1, 0, 0, ""]

    def GetVersionString(self):
        return "19.1.0.0"

    def Fusion(self):
        return None

    def methods(self, kind: str | None = None) -> list[str]:
        """The recorded method names in call order (of one object kind, if given)."""
        return [m for k, m, _ in self.calls if kind is None or k == kind]

    def _probe(self, item) -> MediaPoolItem | None:
        """A media pool item for a file (or sequence clipInfo) Resolve could import, else None."""
        if isinstance(item, dict):
            return self._probe_sequence(item)
        if not isinstance(item, str) or not os.path.isfile(item):
            return None
        import av

        try:
            with av.open(item) as c:
                s = c.streams.video[0]
                rate = Fraction(s.average_rate or s.guessed_rate)
                frames = s.frames or sum(1 for p in c.demux(s) if p.size)
                # Matroska keeps it as an upper-case TIMECODE tag.
                tags = {k.lower(): v for k, v in {**c.metadata, **s.metadata}.items()}
                tc = tags.get("timecode") or "00:00:00:00"
                w, h = s.codec_context.width, s.codec_context.height
        except Exception:  # noqa: BLE001 - not media Resolve can read
            return None
        hh, mm, ss, ff = (int(x) for x in re.split("[:;]", tc))
        fps = round(float(rate))
        tc_frames = ((hh * 60 + mm) * 60 + ss) * fps + ff
        return MediaPoolItem(
            self,
            item,
            {
                "Type": "Video",
                "Resolution": f"{w}x{h}",
                "FPS": f"{float(rate):g}",
                "Frames": str(frames),
                "Start TC": tc,
                "_start_tc_frames": str(tc_frames),
            },
        )

    def _probe_sequence(self, info: dict) -> MediaPoolItem | None:
        m = _SEQ_PATTERN.match(str(info.get("FilePath", "")))
        try:
            a, b = int(info["StartIndex"]), int(info["EndIndex"])
        except (KeyError, TypeError, ValueError):
            return None
        if not m or a > b:
            return None
        pad = int(m.group("pad"))
        files = [f"{m.group('prefix')}{n:0{pad}d}{m.group('suffix')}" for n in range(a, b + 1)]
        if not all(os.path.isfile(f) for f in files):
            return None
        import OpenImageIO as oiio

        inp = oiio.ImageInput.open(files[0])
        if inp is None:
            return None
        spec = inp.spec()
        inp.close()
        shown = f"{m.group('prefix')}[{a:0{pad}d}-{b:0{pad}d}]{m.group('suffix')}"
        return MediaPoolItem(
            self,
            shown,
            {
                "Type": "Image Sequence",
                "Resolution": f"{spec.width}x{spec.height}",
                "Frames": str(b - a + 1),
                "_start_tc_frames": str(a),
                "_dir": os.path.dirname(files[0]),
            },
        )


def resolve_with_project(
    name: str = "Demo", width: int = 1920, height: int = 1080, rate: float = 24.0
) -> FakeResolve:
    """A Resolve with one open project of the given timeline resolution and rate."""
    app = FakeResolve()
    app.project_manager.CreateProject(name)
    p = app.project_manager.project
    p.settings.update(
        timelineResolutionWidth=str(width),
        timelineResolutionHeight=str(height),
        timelineFrameRate=f"{rate:g}",
    )
    app.calls.clear()
    return app
