"""Where the factory's files live: the checkout, python/'s caches, checkpoints and records."""

from __future__ import annotations

import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[1]  # python/
ROOT = PYTHON_DIR.parent  # the checkout
# The git-ignored cache of downloaded packages and prepared patch files.
CACHE_DIR = PYTHON_DIR / "data"
# Committed checkpoints (*.pt) and their validation logs (*.log.jsonl).
CHECKPOINTS_DIR = PYTHON_DIR / "checkpoints"
# Committed records: the file lists of the source packages and the version-2 photo set.
MANIFESTS_DIR = PYTHON_DIR / "manifests"
PHOTOS_V2_TSV = PYTHON_DIR / "photos-v2.tsv"
MODELS_DIR = ROOT / "kwaflux_ofx" / "models"
MODELS_DOC = ROOT / "docs" / "models.md"


def checkout_on_path() -> None:
    """Put the checkout first on sys.path, so the engine (and the suite's helpers) come from it
    rather than from an installed copy: the trainer must use the engine's alignment graph."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
