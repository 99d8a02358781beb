"""The input colour spaces' curves and gamuts, each written once for numpy and for ONNX graphs.

Every transform is a per-channel curve to scene-linear light in the space's own gamut, a 3×3
matrix to Rec.709 primaries, then the sRGB encoding the models learned, and the exact reverse.
Each curve is a function of an `ops` namespace, so the same lines run on numpy arrays
(`to_display`/`from_display`) and build the ONNX graphs of engine/colour_graph.py. OpenColorIO's
studio config is the reference: tests/test_colour.py compares every space with it on the same
pixels; the matrices are read off it (`ocio://studio-config-latest`, OCIO 2.6), the curves come
from the cameras' published specifications.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kwaflux_ofx.settings import ColourSpace

LN10 = math.log(10.0)
LN2 = math.log(2.0)


class _NumpyOps:
    """The curves' operations on numpy arrays (float32 in, float32 out)."""

    @staticmethod
    def where(cond, a, b):
        return np.where(cond, a, b)

    @staticmethod
    def exp(x):
        return np.exp(x)

    @staticmethod
    def log(x):
        return np.log(x)

    @staticmethod
    def sqrt(x):
        return np.sqrt(x)

    @staticmethod
    def maximum(x, v):
        return np.maximum(x, np.float32(v))

    @staticmethod
    def power(x, p):
        return np.power(x, np.float32(p))


def _log10(ops, x):
    return ops.log(x) * (1.0 / LN10)


def _log2(ops, x):
    return ops.log(x) * (1.0 / LN2)


def _exp10(ops, x):
    return ops.exp(x * LN10)


def _exp2(ops, x):
    return ops.exp(x * LN2)


def _safe(ops, x, floor=1e-10):
    # log of the branch np.where / Where does not take: kept finite so neither warns nor NaNs.
    return ops.maximum(x, floor)


# -- the curves: encoded value <-> scene-linear value, per channel ---------------------------
def srgb_encode(ops, x):
    # The linear toe carries on below 0 (as OCIO's sRGB does), the power above 1: no clip.
    return ops.where(x < 0.0031308, x * 12.92, ops.power(_safe(ops, x), 1.0 / 2.4) * 1.055 - 0.055)


def srgb_decode(ops, y):
    return ops.where(
        y < 0.04045, y * (1.0 / 12.92), ops.power(_safe(ops, (y + 0.055) / 1.055), 2.4)
    )


def _identity(ops, x):
    return x


_ACESCCT_CUT_LIN, _ACESCCT_A, _ACESCCT_B = 0.0078125, 10.5402377416545, 0.0729055341958355
_ACESCCT_CUT_LOG = 0.155251141552511


def acescct_encode(ops, x):
    return ops.where(
        x <= _ACESCCT_CUT_LIN,
        x * _ACESCCT_A + _ACESCCT_B,
        (_log2(ops, _safe(ops, x)) + 9.72) / 17.52,
    )


def acescct_decode(ops, y):
    return ops.where(
        y <= _ACESCCT_CUT_LOG, (y - _ACESCCT_B) / _ACESCCT_A, _exp2(ops, y * 17.52 - 9.72)
    )


_DI_A, _DI_B, _DI_C, _DI_M = 0.0075, 7.0, 0.07329248, 10.44426855
_DI_LIN_CUT, _DI_LOG_CUT = 0.00262409, 0.02740668


def davinci_encode(ops, x):
    return ops.where(
        x <= _DI_LIN_CUT, x * _DI_M, (_log2(ops, _safe(ops, x + _DI_A)) + _DI_B) * _DI_C
    )


def davinci_decode(ops, y):
    return ops.where(y <= _DI_LOG_CUT, y / _DI_M, _exp2(ops, y / _DI_C - _DI_B) - _DI_A)


# ARRI LogC3 at EI 800 (ALEXA, "LogC v3" white paper).
_C3 = dict(cut=0.010591, a=5.555556, b=0.052272, c=0.247190, d=0.385537, e=5.367655, f=0.092809)


def logc3_encode(ops, x):
    k = _C3
    return ops.where(
        x > k["cut"],
        _log10(ops, _safe(ops, x * k["a"] + k["b"])) * k["c"] + k["d"],
        x * k["e"] + k["f"],
    )


def logc3_decode(ops, y):
    k = _C3
    return ops.where(
        y > k["e"] * k["cut"] + k["f"],
        (_exp10(ops, (y - k["d"]) / k["c"]) - k["b"]) / k["a"],
        (y - k["f"]) / k["e"],
    )


# ARRI LogC4 ("ALEXA LogC4" specification).
_C4_A = (2.0**18 - 16.0) / 117.45
_C4_B = (1023.0 - 95.0) / 1023.0
_C4_C = 95.0 / 1023.0
_C4_S = (7.0 * LN2 * 2.0 ** (7.0 - 14.0 * _C4_C / _C4_B)) / (_C4_A * _C4_B)
_C4_T = (2.0 ** (14.0 * (-_C4_C / _C4_B) + 6.0) - 64.0) / _C4_A


def logc4_encode(ops, x):
    return ops.where(
        x >= _C4_T,
        (_log2(ops, _safe(ops, x * _C4_A + 64.0)) - 6.0) / 14.0 * _C4_B + _C4_C,
        (x - _C4_T) / _C4_S,
    )


def logc4_decode(ops, y):
    return ops.where(
        y >= 0.0,
        (_exp2(ops, (y - _C4_C) * (14.0 / _C4_B) + 6.0) - 64.0) / _C4_A,
        y * _C4_S + _C4_T,
    )


_SL3_KNEE = 171.2102946929


def slog3_encode(ops, x):
    return ops.where(
        x >= 0.01125,
        (_log10(ops, _safe(ops, (x + 0.01) / 0.19)) * 261.5 + 420.0) / 1023.0,
        (x * ((_SL3_KNEE - 95.0) / 0.01125) + 95.0) / 1023.0,
    )


def slog3_decode(ops, y):
    return ops.where(
        y >= _SL3_KNEE / 1023.0,
        _exp10(ops, (y * 1023.0 - 420.0) / 261.5) * 0.19 - 0.01,
        (y * 1023.0 - 95.0) * (0.01125 / (_SL3_KNEE - 95.0)),
    )


_VL_B, _VL_C, _VL_D = 0.00873, 0.241514, 0.598206


def vlog_encode(ops, x):
    return ops.where(x < 0.01, x * 5.6 + 0.125, _log10(ops, _safe(ops, x + _VL_B)) * _VL_C + _VL_D)


def vlog_decode(ops, y):
    return ops.where(y < 0.181, (y - 0.125) / 5.6, _exp10(ops, (y - _VL_D) / _VL_C) - _VL_B)


# Canon Log 3 (Canon's "Canon Log 3" note): three pieces, mirrored below the linear middle;
# the curve is defined on reflectance, 0.9 of scene-linear.
def clog3_encode(ops, x):
    r = x * (1.0 / 0.9)
    return ops.where(
        r < -0.014,
        -_log10(ops, _safe(ops, -r * 14.98325 + 1.0)) * 0.36726845 + 0.12783901,
        ops.where(
            r <= 0.014,
            r * 1.9754798 + 0.12512219,
            _log10(ops, _safe(ops, r * 14.98325 + 1.0)) * 0.36726845 + 0.12240537,
        ),
    )


def clog3_decode(ops, y):
    r = ops.where(
        y < 0.097465473,
        -(_exp10(ops, (0.12783901 - y) / 0.36726845) - 1.0) / 14.98325,
        ops.where(
            y <= 0.15277891,
            (y - 0.12512219) / 1.9754798,
            (_exp10(ops, (y - 0.12240537) / 0.36726845) - 1.0) / 14.98325,
        ),
    )
    return r * 0.9


_R3_A, _R3_B, _R3_C, _R3_G = 0.224282, 155.975327, 0.01, 15.1927


def log3g10_encode(ops, x):
    v = x + _R3_C
    return ops.where(v < 0.0, v * _R3_G, _log10(ops, _safe(ops, v * _R3_B + 1.0)) * _R3_A)


def log3g10_decode(ops, y):
    return ops.where(y < 0.0, y / _R3_G, (_exp10(ops, y / _R3_A) - 1.0) / _R3_B) - _R3_C


# Apple Log ("Apple Log profile" white paper): a parabola from R0 to Rt, then a log.
_AL_R0, _AL_RT, _AL_C = -0.05641088, 0.01, 47.28711236
_AL_B, _AL_G, _AL_BETA = 0.00964052, 0.08550479, 0.69336945


def applelog_encode(ops, x):
    d = ops.maximum(x - _AL_R0, 0.0)
    return ops.where(
        x >= _AL_RT, _log2(ops, _safe(ops, x + _AL_B)) * _AL_G + _AL_BETA, d * d * _AL_C
    )


def applelog_decode(ops, y):
    cut = _AL_C * (_AL_RT - _AL_R0) ** 2
    return ops.where(
        y >= cut,
        _exp2(ops, (y - _AL_BETA) / _AL_G) - _AL_B,
        ops.sqrt(ops.maximum(y, 0.0) / _AL_C) + _AL_R0,
    )


_BM_A, _BM_B, _BM_C = 0.08692876065491224, 0.005494072432257808, 0.5300133392291939
_BM_D, _BM_E, _BM_LIN_CUT = 8.283605932402494, 0.09246575342465753, 0.005


def bmdfilm_encode(ops, x):
    return ops.where(
        x < _BM_LIN_CUT, x * _BM_D + _BM_E, ops.log(_safe(ops, x + _BM_B)) * _BM_A + _BM_C
    )


def bmdfilm_decode(ops, y):
    return ops.where(
        y < _BM_D * _BM_LIN_CUT + _BM_E, (y - _BM_E) / _BM_D, ops.exp((y - _BM_C) / _BM_A) - _BM_B
    )


Curve = Callable


@dataclass(frozen=True)
class Space:
    """One input colour space: its curve both ways, its gamut's matrix to Rec.709 primaries
    (None: Rec.709 already) and the studio-config name OCIO knows it by."""

    decode: Curve  # encoded -> scene-linear, own gamut
    encode: Curve  # the inverse
    to_rec709: tuple[tuple[float, float, float], ...] | None
    ocio_name: str


# Read off OCIO's studio config: its processor from each space's linear gamut to
# "Linear Rec.709 (sRGB)" applied to the unit vectors (chromatic adaptation included).
_M_AP1 = ((1.7050509453, -0.6217921376, -0.0832588747), (-0.1302564144, 1.1408047676, -0.0105483187), (-0.0240033567, -0.1289689690, 1.1529723406))  # fmt: skip
_M_DWG = ((1.8987312317, -0.7886633873, -0.1100677922), (-0.1694642603, 1.4922628403, -0.3227986395), (-0.1216139346, -0.3219261169, 1.4435400963))  # fmt: skip
_M_AWG3 = ((1.6175960302, -0.5342364311, -0.0833596140), (-0.0710103065, 1.3374356031, -0.2664253414), (-0.0211238861, -0.2323743850, 1.2534983158))  # fmt: skip
_M_AWG4 = ((1.8929405212, -0.7780008316, -0.1149396673), (-0.2064483613, 1.3430260420, -0.1365777403), (-0.0122581124, -0.1573259085, 1.1695840359))  # fmt: skip
_M_SG3C = ((1.6268564463, -0.5369886160, -0.0898677632), (-0.1791094244, 1.4208630323, -0.2417536080), (-0.0441664793, -0.2015192062, 1.2456856966))  # fmt: skip
_M_VG = ((1.8065758944, -0.6956972480, -0.1108786091), (-0.1700903475, 1.3059551716, -0.1358648688), (-0.0252057835, -0.1544683278, 1.1796741486))  # fmt: skip
_M_CG = ((1.9237071276, -0.7950178981, -0.1286892146), (-0.2050459385, 1.4993612766, -0.2943153679), (-0.0232855845, -0.4267781675, 1.4500637054))  # fmt: skip
_M_RWG = ((1.9819760323, -0.9004318118, -0.0815441832), (-0.1781431884, 1.5004683733, -0.3223251700), (-0.1017959639, -0.5352634788, 1.6370594501))  # fmt: skip
# Apple Log is in Rec.2020 primaries (the config's "Apple Log" is applelog_rec2020_scene).
_M_2020 = ((1.6604909897, -0.5876411200, -0.0728498623), (-0.1245504767, 1.1328998804, -0.0083494224), (-0.0181507636, -0.1005788967, 1.1187297106))  # fmt: skip
_M_BWG5 = ((1.5685052872, -0.5195562243, -0.0489491262), (-0.0867659301, 1.3477853537, -0.2610194683), (-0.0521201193, -0.2546937466, 1.3068138361))  # fmt: skip

SPACES: dict[ColourSpace, Space] = {
    # Display goes through the sRGB curve both ways: identity (to_display passes it untouched).
    ColourSpace.DISPLAY: Space(srgb_decode, srgb_encode, None, "sRGB Encoded Rec.709 (sRGB)"),
    ColourSpace.LINEAR: Space(_identity, _identity, None, "Linear Rec.709 (sRGB)"),
    ColourSpace.ACESCG: Space(_identity, _identity, _M_AP1, "ACEScg"),
    ColourSpace.ACESCCT: Space(acescct_decode, acescct_encode, _M_AP1, "ACEScct"),
    ColourSpace.DAVINCI_INTERMEDIATE: Space(
        davinci_decode, davinci_encode, _M_DWG, "DaVinci Intermediate WideGamut"
    ),
    ColourSpace.ARRI_LOGC3: Space(logc3_decode, logc3_encode, _M_AWG3, "ARRI LogC3 (EI800)"),
    ColourSpace.ARRI_LOGC4: Space(logc4_decode, logc4_encode, _M_AWG4, "ARRI LogC4"),
    ColourSpace.SONY_SLOG3: Space(slog3_decode, slog3_encode, _M_SG3C, "S-Log3 S-Gamut3.Cine"),
    ColourSpace.PANASONIC_VLOG: Space(vlog_decode, vlog_encode, _M_VG, "V-Log V-Gamut"),
    ColourSpace.CANON_LOG3: Space(clog3_decode, clog3_encode, _M_CG, "CanonLog3 CinemaGamut D55"),
    ColourSpace.RED_LOG3G10: Space(
        log3g10_decode, log3g10_encode, _M_RWG, "Log3G10 REDWideGamutRGB"
    ),
    ColourSpace.APPLE_LOG: Space(applelog_decode, applelog_encode, _M_2020, "Apple Log"),
    ColourSpace.BMD_FILM_GEN5: Space(
        bmdfilm_decode, bmdfilm_encode, _M_BWG5, "BMDFilm WideGamut Gen5"
    ),
}


def _matrix(rgb: np.ndarray, m) -> np.ndarray:
    return (rgb @ np.asarray(m, np.float32).T).astype(np.float32, copy=False)


def to_display(rgb: np.ndarray, space: ColourSpace) -> np.ndarray:
    """H×W×3 float32 in `space` -> the models' encoding (display sRGB, Rec.709), unclipped."""
    if space is ColourSpace.DISPLAY:
        return rgb
    s = SPACES[space]
    with np.errstate(all="ignore"):
        lin = s.decode(_NumpyOps, rgb.astype(np.float32, copy=False))
        if s.to_rec709 is not None:
            lin = _matrix(lin, s.to_rec709)
        return srgb_encode(_NumpyOps, lin).astype(np.float32, copy=False)


def from_display(rgb: np.ndarray, space: ColourSpace) -> np.ndarray:
    """The exact inverse of to_display."""
    if space is ColourSpace.DISPLAY:
        return rgb
    s = SPACES[space]
    with np.errstate(all="ignore"):
        lin = srgb_decode(_NumpyOps, rgb.astype(np.float32, copy=False))
        if s.to_rec709 is not None:
            lin = _matrix(lin, np.linalg.inv(np.asarray(s.to_rec709, np.float64)))
        return s.encode(_NumpyOps, lin).astype(np.float32, copy=False)
