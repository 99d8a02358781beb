"""Finds models by name: the built-in ones shipped in this folder and the user's models folder."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kwaflux_ofx.errors import ModelError
from kwaflux_ofx.settings import SR_LOOK_DEFAULT, SrLook

BUILTIN_DIR = Path(__file__).resolve().parent
# The built-in model of each (kind, scale, look); the denoiser has one look (None).
DEFAULTS: dict[tuple[str, int, SrLook | None], str] = {
    ("denoise", 1, None): "kwaflux-denoise",
    ("sr", 2, SrLook.FAITHFUL): "kwaflux-sr-x2",
    ("sr", 4, SrLook.FAITHFUL): "kwaflux-sr-x4",
    ("sr", 2, SrLook.DETAIL): "kwaflux-sr-x2-detail",
    ("sr", 4, SrLook.DETAIL): "kwaflux-sr-x4-detail",
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


def default_model_for(kind: str, scale: int, look: SrLook = SR_LOOK_DEFAULT) -> str:
    try:
        return DEFAULTS[(kind, scale, look if kind == "sr" else None)]
    except KeyError:
        what = f"{look.value} {kind}" if kind == "sr" and look is not SR_LOOK_DEFAULT else kind
        raise ModelError(f"no built-in {what} model for x{scale}; pass a model") from None


def sr_model_for(scale: int, look: SrLook, model: str | os.PathLike | None) -> str | None:
    """The SR model a command or an effect asks for: `model` when given (the engine's default
    when None) for the default look; another look names its built-in model, which a chosen
    model would contradict. Scale 1 upscales nothing, whatever the look."""
    if look is SR_LOOK_DEFAULT or scale == 1:
        return model
    if model is not None:
        raise ModelError(
            f"the {look.value} look is a built-in model; choose it or a model ({model}), not both"
        )
    return default_model_for("sr", scale, look)
