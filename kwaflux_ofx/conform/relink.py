"""Point the conformed clips of a timeline at their new media."""

from __future__ import annotations

import os

import opentimelineio as otio

from kwaflux_ofx.conform.plan import (
    ConformPlan,
    ConformSettings,
    same_rate,
)
from kwaflux_ofx.conform.timeline import (
    video_clips,
)
from kwaflux_ofx.media.codecs import CODECS
from kwaflux_ofx.media.timecode import frames_to_timecode


def relink_timeline(
    timeline: otio.schema.Timeline, plan: ConformPlan, results: dict, settings: ConformSettings
) -> otio.schema.Timeline:
    """A copy of the timeline whose conformed clips point at the new media. Source ranges and
    record positions are untouched: each new file starts at the same source timecode."""
    new = timeline.deepcopy()
    clips = video_clips(new)
    units = {u.id: u for u in plan.units}
    for cp in plan.clips:
        # media rendered from a damaged source is complete (broken frames held): relinked too
        if cp.unit is None or results.get(cp.unit, {}).get("status") not in ("done", "damaged"):
            continue
        unit = units[cp.unit]
        clip = clips[cp.index]
        # Express the new available range at the clip's own rate when it is the media's
        # rate under another name (23.976 vs 24000/1001), so ranges compare exactly.
        rate = cp.clip_rate if same_rate(cp.clip_rate, unit.media.rate) else unit.media.rate
        avail = otio.opentime.TimeRange(
            otio.opentime.RationalTime(unit.start_tc, rate),
            otio.opentime.RationalTime(unit.frames, rate),
        )
        codec = CODECS[unit.codec]
        if not codec.is_sequence:
            ref = otio.schema.ExternalReference(
                target_url=otio.url_utils.url_from_filepath(unit.output), available_range=avail
            )
        else:
            ref = otio.schema.ImageSequenceReference(
                target_url_base=otio.url_utils.url_from_filepath(unit.output) + "/",
                name_prefix=f"{unit.stem}.",
                name_suffix=codec.ext,
                start_frame=unit.start_tc,
                frame_step=1,
                rate=rate,
                frame_zero_padding=7,
                available_range=avail,
            )
        ref.name = os.path.basename(unit.output)
        ref.available_image_bounds = otio.schema.Box2d(
            otio.schema.V2d(0, 0), otio.schema.V2d(unit.out_width, unit.out_height)
        )
        ref.metadata["kwaflux"] = {
            "width": unit.out_width,
            "height": unit.out_height,
            "codec": unit.codec,
            "start_timecode": frames_to_timecode(unit.start_tc, rate, unit.media.drop_frame),
        }
        if clip.source_range is None:
            # The clip played its whole old media; pin that range, or the new (handle-padded)
            # media would change the clip's length on the record side.
            clip.source_range = clip.trimmed_range()
        clip.media_reference = ref
        clip.metadata["kwaflux"] = {
            "source_media": cp.media,
            **settings.processing(),
            "codec": settings.codec,
            "handles": settings.handles,
        }
    return new
