"""Finds models by name: the built-in ones shipped in this folder and the user's models folder."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kwaflux_ofx.errors import ModelError

BUILTIN_DIR = Path(__file__).resolve().parent
DEFAULTS = {
    ("denoise", 1): "kwaflux-denoise",
    ("sr", 2): "kwaflux-sr-x2",
    ("sr", 4): "kwaflux-sr-x4",
}


def user_models_dir() -> Path:
    """Where a user drops their own .onnx files ($KWAFLUX_MODELS_DIR, else the XDG data folder)."""
    env = os.environ.get("KWAFLUX_MODELS_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "kwaflux" / "models"


def search_dirs() -> list[Path]:
    return [user_models_dir(), BUILTIN_DIR]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    builtin: bool


def list_models() -> list[ModelInfo]:
    """Every model found by name; a user's model shadows a built-in one of the same name."""
    seen: dict[str, ModelInfo] = {}
    for folder in search_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.onnx")):
            name = path.name.removesuffix(".onnx")
            if name.endswith(".fp16") or name in seen:
                continue  # fp16 variants are picked by the engine on GPUs, not listed apart
            seen[name] = ModelInfo(name, path, folder == BUILTIN_DIR)
    return sorted(seen.values(), key=lambda m: m.name)


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A registry name or a path to an .onnx file -> an existing path."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".onnx" or os.sep in text or path.is_file():
        if not path.is_file():
            raise ModelError("model file not found", path)
        return path
    for info in list_models():
        if info.name == text:
            return info.path
    known = ", ".join(m.name for m in list_models()) or "none installed"
    raise ModelError(f"no model named {text!r} (known: {known}; or give a path to an .onnx file)")


def default_model_for(kind: str, scale: int) -> str:
    try:
        return DEFAULTS[(kind, scale)]
    except KeyError:
        raise ModelError(f"no built-in {kind} model for x{scale}; pass a model") from None
