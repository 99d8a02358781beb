"""Suite-wide set-up: the fresh-machine read guard, and the extra set of real exported timelines
runs only where it is present."""

from __future__ import annotations

import pytest

from tests.support import reads
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


# The fresh-machine guard (tests/support/reads.py): every phase of every test fails if it read
# a file a fresh clone would not have. ../shared/timelines is the documented extra set.
_guard = reads.install(extra_roots=(SHARED_TIMELINES,))


def _check_reads(phase: str) -> None:
    seen = _guard.take()
    if seen:
        shown = "; ".join(seen[:5]) + (f"; and {len(seen) - 5} more" if len(seen) > 5 else "")
        pytest.fail(
            f"read outside the checkout, the venv and the test's temporary files during {phase} "
            f"(a fresh machine has none of it): {shown}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    _guard.take()  # what collection or an earlier teardown read is not this test's
    result = yield
    _check_reads("set-up")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    _check_reads("the test")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    _check_reads("tear-down")
    return result
