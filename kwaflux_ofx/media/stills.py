"""Still images in and out through OpenImageIO (PNG, TIFF, EXR, DPX...), keeping bit depth, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from kwaflux_ofx.errors import MediaError, first_line

# OIIO type names for the dtypes the engine takes.
_OIIO_TYPES = {np.uint8: "uint8", np.uint16: "uint16", np.float16: "half", np.float32: "float"}


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read an image as H×W×C in its own depth (8/16-bit ints, half or float). Returns (pixels, attrs)."""
    import OpenImageIO as oiio

    path = Path(path)
    if not path.is_file():
        raise MediaError("image not found", path)
    # Keep straight (unassociated) alpha as stored, e.g. PNG: no premultiply round trip on 8 bits.
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(str(path), config)
    if inp is None:
        raise MediaError(f"cannot read image: {_oiio_error(oiio)}", path)
    try:
        spec = inp.spec()
        fmt = str(spec.format)
        want = {"uint8": "uint8", "uint16": "uint16", "half": "half", "float": "float"}.get(fmt)
        if want is None:  # 10/12-bit DPX and others arrive as uint16; anything else as float
            want = "uint16" if spec.format.basetype in (oiio.UINT16, oiio.UINT32) else "float"
        pixels = inp.read_image(0, 0, 0, spec.nchannels, want)
        if pixels is None:
            raise MediaError(f"cannot decode image: {_oiio_error(inp)}", path)
        attrs = {
            "format": want,
            "channelnames": list(spec.channelnames),
            "colorspace": spec.getattribute("oiio:ColorSpace"),
            "premultiplied": not spec.get_int_attribute("oiio:UnassociatedAlpha", 0),
        }
    finally:
        inp.close()
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels, attrs


def check_channels(pixels: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Accept RGB and RGBA; grey becomes RGB; anything else is a clear error."""
    c = pixels.shape[2]
    if c == 1:
        return np.repeat(pixels, 3, axis=2)
    if c == 2:  # grey + alpha
        return np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
    if c not in (3, 4):
        raise MediaError(f"has {c} channels; expected RGB or RGBA", path)
    return pixels


def write_image(path: str | os.PathLike, pixels: np.ndarray, attrs: dict | None = None) -> Path:
    """Write atomically: a temp file in the same folder, renamed over the target when complete."""
    import OpenImageIO as oiio

    path = Path(path)
    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    fmt = _OIIO_TYPES.get(pixels.dtype.type)
    if fmt is None:
        raise MediaError(f"cannot write dtype {pixels.dtype}", path)
    if not path.parent.is_dir():
        raise MediaError("output folder does not exist", path.parent)
    h, w, c = pixels.shape
    # Keep the extension last so OIIO picks the right writer for the temp file.
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        out = oiio.ImageOutput.create(tmp)
        if out is None:
            raise MediaError(f"no writer for this file type: {_oiio_error(oiio)}", path)
        spec = oiio.ImageSpec(w, h, c, fmt)
        if c == 4:
            spec.channelnames = ("R", "G", "B", "A")
            spec.alpha_channel = 3
        if attrs and attrs.get("premultiplied") is False:
            spec.attribute("oiio:UnassociatedAlpha", 1)
        if attrs and attrs.get("colorspace"):
            spec.attribute("oiio:ColorSpace", attrs["colorspace"])
        if not out.open(tmp, spec):
            raise MediaError(f"cannot write image: {_oiio_error(out)}", path)
        ok = out.write_image(pixels)
        out.close()
        if not ok:
            raise MediaError(f"cannot write image: {_oiio_error(out)}", path)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _oiio_error(obj) -> str:
    try:
        text = obj.geterror()
    except Exception:
        text = ""
    return first_line(text or "")
