"""From a timeline to work units: which media, which frames, which output file, for every clip."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re

import opentimelineio as otio

from kwaflux_ofx import settings
from kwaflux_ofx.conform.locate import MediaIndex, base_name, locate
from kwaflux_ofx.conform.timeline import ClipUse, clip_use, video_clips
from kwaflux_ofx.errors import KwafluxError, MediaError, checked
from kwaflux_ofx.media.codecs import CODECS
from kwaflux_ofx.media.delivery import Delivery, check_rate
from kwaflux_ofx.media.probe import MediaInfo, probe
from kwaflux_ofx.media.timecode import frames_to_timecode

log = logging.getLogger(__name__)

RATE_TOLERANCE = 1e-3  # 23.976 and 24000/1001 are the same rate; frame numbers map 1:1


@dataclasses.dataclass
class ConformSettings:
    """Everything the user chose; recorded in the report and in each new clip's metadata."""

    scale: int = settings.DEFAULT_SCALE
    denoise: float | str = 0.0  # a strength, or settings.DENOISE_AUTO (measured per clip)
    model: str | None = None
    denoise_model: str | None = None
    handles: int = 12
    codec: str = settings.DEFAULT_CODEC
    rate: float | None = None
    jobs: int = 1
    scheduler: str | None = None
    device: str = "auto"
    threads: int | None = None
    # Two used ranges of one media closer than this many frames are rendered as one output.
    merge_gap: int | None = None
    # Frames each side the denoiser looks at; None: the default when denoise is on, else 0.
    temporal_radius: int | None = None
    # How the new media is written beyond its codec: container, quality, streams, colour.
    delivery: Delivery = Delivery()
    # What the sources' pixels are in (settings.ColourSpace name), or auto: read off each file.
    colour: str = settings.COLOUR_AUTO

    def __post_init__(self):
        self.scale = checked(settings.check_scale, self.scale, "--scale")
        self.denoise = checked(settings.check_denoise_or_auto, self.denoise, "--denoise")
        colour = checked(settings.check_colour_space, self.colour, "--colour-space")
        self.colour = colour if isinstance(colour, str) else colour.value
        if self.temporal_radius is None:
            self.temporal_radius = settings.TEMPORAL_RADIUS_DEFAULT if self.denoise else 0
        self.temporal_radius = checked(
            settings.check_temporal_radius, self.temporal_radius, "--temporal-radius"
        )
        checked(settings.check_codec, self.codec, "--codec")
        self.delivery.check(self.codec)
        if self.handles < 0:
            raise KwafluxError(f"--handles must be 0 or more, not {self.handles}")
        if self.jobs < 1:
            raise KwafluxError(f"--jobs must be 1 or more, not {self.jobs}")

    def processing(self) -> dict:
        """What decides the new pixels (recorded in fingerprints and in the clips' metadata)."""
        return {
            "scale": self.scale,
            "denoise": self.denoise,
            "model": self.model or "",
            "denoise_model": self.denoise_model or "",
            "temporal_radius": self.temporal_radius,
            "colour": self.colour,
        }

    def as_dict(self) -> dict:
        """The settings as the JSON report holds them (tuples as lists), so a report read back
        from its file equals the one returned."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @property
    def auto(self) -> bool:
        return self.denoise == settings.DENOISE_AUTO

    @property
    def gap(self) -> int:
        return self.merge_gap if self.merge_gap is not None else max(2 * self.handles, 24)


@dataclasses.dataclass
class ClipPlan:
    """One video clip: where its media is and which frames of it the cut needs."""

    index: int
    name: str
    status: str  # "planned" | "skipped" | "missing" | "failed"
    reason: str = ""
    media: str = ""
    first: int = 0  # media-local frame range the cut uses, without handles
    last: int = 0  # one past the end
    origin: int = 0  # the media's first frame as a frame count at the media rate (timecode)
    origin_from: str = ""
    clip_rate: float = 0.0
    unit: int | None = None

    @property
    def frames(self) -> int:
        return max(0, self.last - self.first)


@dataclasses.dataclass
class WorkUnit:
    """A media file × frame range rendered into one output: what a worker needs, nothing more."""

    id: int
    media: MediaInfo
    start: int  # media-local frame indices, handles included, clamped to the media
    stop: int
    origin: int
    output: str  # final path (a folder for image sequences)
    codec: str
    out_width: int
    out_height: int
    clips: list[int] = dataclasses.field(default_factory=list)
    # The strength this unit renders at: --denoise, or what auto measured on its media.
    denoise: float | None = None
    auto: dict | None = None  # the measurement behind an auto strength (for the report)
    # The colour space its pixels are read in (media/colour.py: --colour-space or the file's).
    colour: settings.ColourSpace = settings.ColourSpace.DISPLAY
    delivery: Delivery = Delivery()

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def strength(self, chosen: ConformSettings) -> float:
        return self.denoise if self.denoise is not None else float(chosen.denoise)

    @property
    def start_tc(self) -> int:
        """The timecode of the first frame; with --vfr keep, frames are counted, not slots: the
        slot that frame is shown on."""
        info = self.media
        slot = round(info.seconds(self.start) * info.rate) if info.keeps_times else self.start
        return self.origin + slot

    @property
    def stem(self) -> str:
        name = os.path.basename(self.output)
        return name if CODECS[self.codec].is_sequence else os.path.splitext(name)[0]


@dataclasses.dataclass
class ConformPlan:
    clips: list[ClipPlan]
    units: list[WorkUnit]


def same_rate(a: float, b: float) -> bool:
    return abs(a - b) <= RATE_TOLERANCE * max(a, b)


def to_media_frames(value: float, rate: float, media_rate: float) -> float:
    """A time value at `rate` as a frame position at the media's rate."""
    return value if same_rate(rate, media_rate) else value * media_rate / rate


def choose_origin(use: ClipUse, ref, info: MediaInfo) -> tuple[int, str, float, float] | None:
    """Find where the media starts in the clip's source time: (origin, source, s, e) with s, e
    the used span in media-local frames.

    NLEs write source ranges in the media's own timecode (Resolve starts a clip's available range
    at its media's start timecode; EDLs carry source timecode only); image sequences may be
    counted by their first frame number. Try each origin in trust order and keep the first
    under which the used span lies inside the media.
    """
    s_abs = to_media_frames(use.start, use.rate, info.rate)
    e_abs = to_media_frames(use.end, use.rate, info.rate)
    candidates: list[tuple[float, str]] = []
    # The file's own timecode first: the exported available range is what the NLE read from
    # the file it saw, which may not be the file found here.
    if info.start_tc is not None:
        candidates.append((float(info.start_tc), "media timecode"))
    avail = getattr(ref, "available_range", None) if ref is not None else None
    if avail is not None and not isinstance(ref, otio.schema.MissingReference):
        a = avail.start_time
        candidates.append((to_media_frames(a.value, a.rate, info.rate), "available range"))
    if info.kind == "sequence" and info.seq_suffix:
        candidates.append((float(info.first_number), "first frame number"))
    candidates.append((0.0, "media start"))
    best = None
    for origin, source in candidates:
        s, e = s_abs - origin, e_abs - origin
        if s >= -1e-3 and e <= info.frames + 1e-3:
            return round(origin), source, s, e
        overlap = min(e, info.frames) - max(s, 0)
        if overlap > 0 and (best is None or overlap > best[0]):
            best = (overlap, round(origin), source, s, e)
    if best is not None:
        return best[1], best[2] + " (clamped)", best[3], best[4]
    return None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(name: str) -> str:
    """A file name stem that stays inside the output folder whatever the input: no separators,
    no leading dots, no '..', bounded length."""
    stem = _UNSAFE.sub("_", name).strip("._-")
    stem = re.sub(r"\.{2,}", ".", stem)
    return stem[:100] or "media"


def media_stem(info: MediaInfo) -> str:
    if info.kind == "sequence" and info.seq_suffix:
        return safe_stem(info.seq_prefix.rstrip("._-") or base_name(info.seq_dir))
    return safe_stem(os.path.splitext(base_name(info.path))[0])


def _merge(ranges: list[tuple[int, int, int]], gap: int) -> list[tuple[int, int, list[int]]]:
    """Merge (start, stop, clip) ranges whose gaps are at most `gap` frames."""
    out: list[tuple[int, int, list[int]]] = []
    for start, stop, clip in sorted(ranges):
        if out and start <= out[-1][1] + gap:
            s0, e0, clips = out[-1]
            out[-1] = (s0, max(e0, stop), clips + [clip])
        else:
            out.append((start, stop, [clip]))
    return out


def build_plan(
    timeline: otio.schema.Timeline,
    settings: ConformSettings,
    media_dir: str,
    search_paths: list[str],
    base_dir: str | None = None,
) -> ConformPlan:
    index = MediaIndex(search_paths, exclude=[media_dir]) if search_paths else None
    codec = CODECS[settings.codec]
    ext = "" if codec.is_sequence else settings.delivery.extension(settings.codec)
    infos: dict[str, MediaInfo] = {}
    errors: dict[str, str] = {}
    plans: list[ClipPlan] = []
    for i, clip in enumerate(video_clips(timeline)):
        cp = ClipPlan(index=i, name=clip.name or f"clip {i + 1}", status="planned")
        plans.append(cp)
        ref = clip.media_reference
        if isinstance(ref, otio.schema.GeneratorReference):
            cp.status, cp.reason = "skipped", f"generator ({ref.generator_kind or 'no media'})"
            continue
        if not clip.enabled:
            cp.status, cp.reason = "skipped", "clip is disabled"
            continue
        use = clip_use(clip, i)
        if use is None:
            cp.status, cp.reason = "skipped", "clip has no source range"
            continue
        cp.clip_rate = use.rate
        path, tried = locate(clip, index, base_dir)
        if path is None:
            cp.status = "missing"
            cp.media = tried[0] if tried else ""
            if not tried:
                cp.reason = "media not found (the clip names no file)"
            else:
                cp.reason = (
                    "media not found (looked for "
                    + ", ".join(repr(t) for t in tried[:4])
                    + (")" if search_paths else "; give --search-path)")
                )
            continue
        key = os.path.realpath(path)
        cp.media = key
        if key not in infos and key not in errors:
            try:
                infos[key] = probe(key)
            except MediaError as exc:
                errors[key] = str(exc)
        if key in errors:
            cp.status, cp.reason = "failed", errors[key]
            continue
        info = infos[key]
        info.adopt_rate(use.rate)
        found = choose_origin(use, ref, info)
        if found is None:
            s = frames_to_timecode(
                math.floor(to_media_frames(use.start, use.rate, info.rate)),
                info.rate,
                info.drop_frame,
            )
            start_tc = frames_to_timecode(info.start_tc or 0, info.rate, info.drop_frame)
            cp.status = "failed"
            cp.reason = (
                f"source range from {s} ({use.frames} frames) is outside the media "
                f"(starts {start_tc}, {info.frames} frames)"
            )
            continue
        cp.origin, cp.origin_from, s, e = found
        cp.first = max(0, math.floor(s + 1e-6))
        cp.last = min(info.frames, max(cp.first + 1, math.ceil(e - 1e-6)))
        if "clamped" in cp.origin_from and info.frames > 1:  # a still is held, not clamped
            short = math.ceil(e - 1e-6) - math.floor(s + 1e-6) - cp.frames
            cp.reason = (
                f"source range runs past its media by {short} frame(s); rendered the "
                f"{cp.frames} frame(s) there"
            )
            log.warning("clip %r: %s (%s)", cp.name, cp.reason, key)

    # Group clips by media and origin, merge their ranges, one unit per merged range.
    groups: dict[tuple[str, int], list[ClipPlan]] = {}
    for cp in plans:
        if cp.status == "planned":
            groups.setdefault((cp.media, cp.origin), []).append(cp)
    stems: dict[str, str] = {}
    units: list[WorkUnit] = []
    for (key, origin), cps in groups.items():
        info = infos[key]
        # a rate the container cannot hold (MXF at 15 fps) is refused before anything renders
        check_rate(ext, info.rate, key)
        ranges = [
            (
                max(0, c.first - settings.handles),
                min(info.frames, c.last + settings.handles),
                c.index,
            )
            for c in cps
        ]
        merged = _merge(ranges, settings.gap)
        stem = media_stem(info)
        # Two different sources with one name (or one source under two origins) get apart.
        if stems.get(stem, key) != key or any(
            u.media.path == key and u.origin != origin for u in units
        ):
            stem = f"{stem}_{hashlib.sha1(f'{key}@{origin}'.encode()).hexdigest()[:6]}"
        stems[stem] = key
        for start, stop, clip_ids in merged:
            name = stem if len(merged) == 1 else f"{stem}_{origin + start}-{origin + stop - 1}"
            out = os.path.join(media_dir, name + ext)
            unit = WorkUnit(
                id=len(units),
                media=info,
                start=start,
                stop=stop,
                origin=origin,
                output=out,
                codec=settings.codec,
                out_width=info.width * settings.scale,
                out_height=info.height * settings.scale,
                clips=sorted(clip_ids),
                delivery=settings.delivery,
            )
            units.append(unit)
            for cid in clip_ids:
                plans[cid].unit = unit.id
    return ConformPlan(clips=plans, units=units)
