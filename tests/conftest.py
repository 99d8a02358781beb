"""Suite-wide set-up: the extra set of real exported timelines runs only where it is present."""

from __future__ import annotations

import pytest

from tests.support.media import SHARED_TIMELINES


@pytest.fixture(autouse=True)
def _shared_timelines_present(request):
    # One skip location and one reason for the whole set, so a clone without ../shared shows
    # a single "SKIPPED [N] ..." line instead of one per test.
    if request.node.get_closest_marker("shared_timelines") and not SHARED_TIMELINES.is_dir():
        pytest.skip(f"extra set of real exported timelines not here ({SHARED_TIMELINES})")
