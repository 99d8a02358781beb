"""Suite-wide set-up: the extra set of real exported timelines runs only where it is present."""

from __future__ import annotations

from tests.support.media import SHARED_TIMELINES

_left_out: list[str] = []


def pytest_collection_modifyitems(config, items):
    # Without ../shared/timelines the set is left out as a whole and reported on one line,
    # rather than as one skip per test.
    if SHARED_TIMELINES.is_dir():
        return
    extra = [item for item in items if item.get_closest_marker("shared_timelines")]
    if extra:
        items[:] = [item for item in items if item not in extra]
        config.hook.pytest_deselected(items=extra)
        _left_out.extend(item.nodeid for item in extra)


def pytest_terminal_summary(terminalreporter):
    if _left_out:
        terminalreporter.write_line(
            f"SKIPPED [{len(_left_out)}] shared_timelines: the extra set of real exported "
            "timelines did not run (no ../shared/timelines beside the project)"
        )
