"""Optional dependencies fail in one line that names the extra to install."""

import subprocess
import sys

import pytest

from kwaflux_ofx import KwafluxError
from kwaflux_ofx.cli import main
from kwaflux_ofx.conform import run_conform


def test_scheduler_without_the_cluster_extra_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    with pytest.raises(KwafluxError, match=r"pip install 'kwaflux-ofx\[cluster\]'"):
        run_conform(
            tmp_path / "cut.otio", tmp_path / "o.otio", tmp_path / "m", scheduler="tcp://x:1"
        )
    argv = ["conform", str(tmp_path / "cut.otio"), "-o", str(tmp_path / "o.otio")]
    assert main([*argv, "--media-dir", str(tmp_path / "m"), "--scheduler", "tcp://x:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kwaflux-ofx[cluster]" in err[0]


def test_the_runtime_does_not_import_unused_packages():
    """psutil is not a dependency; imageio-ffmpeg is the eval extra's (python/kwaflux_lab/eval/evaluate.py). In a
    fresh interpreter: other tests load distributed, which brings psutil along."""
    code = (
        "import sys, kwaflux_ofx.cli, kwaflux_ofx.conform.run, kwaflux_ofx.hosts.ofx.entry\n"
        "print(sorted({'psutil', 'imageio_ffmpeg', 'dask', 'distributed'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
