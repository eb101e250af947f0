"""The one declared table of numeric tolerances for the parity tests.

A check passes when, for every element, ``|actual - expected| <= atol + rtol * |expected|``.
Cases are keyed by ``(zoo model, weight storage dtype)``; ``lookup`` raises for an
unlisted case, so a new model or quantization mode cannot pass silently with a
borrowed bound (the jax2tf rule).

float32 (unquantized)
    ``atol = 1e-5`` plus ``rtol = 1e-5`` for large logits. Justification:
    TF.js and TensorFlow sum in different orders and use different transcendental
    implementations, so outputs differ by float32 rounding only. We measured
    that rounding floor by running each Keras 3 zoo model in float64 with the
    same weights: the float32 error is at most 1.2e-7 to 3.3e-7 of max|y| for
    the small models and MobileNetV2 (3.2e-7 abs), 7.8e-7 for ResNet50 (3.2e-6
    abs at max|y| = 4.05). The bound leaves a margin of 15x (ResNet50) to over 30x.

Quantized weights (compared with the *unquantized* Keras outputs)
    Per-weight storage error ``e_w`` comes from the quantization step:

    * uint8 / uint16: ``e_w <= scale / 2`` with ``scale = (max - min) / (2**bits - 1)``
      (rounding half a step; the zero-point nudge moves the range end by under
      half a step, and clipped values land on the end, so still within scale/2).
    * float16: ``e_w <= max(|w| * 2**-11, 2**-25)`` (half the unit in the last
      place of an 11-bit significand; 2**-25 for subnormals).

    Propagated to an output ``y`` to first order, ``dy = sum_w dy/dw * d_w``:

    * worst case (all errors aligned): ``W = sum_w |dy/dw| e_w``;
    * typical: rounding errors are independent and uniform on ``[-e_w, e_w]``, so
      ``sigma = sqrt(sum_w (dy/dw)**2 e_w**2 / 3)``.

    ``W`` and ``sigma`` were computed with TensorFlow gradients on the zoo inputs
    (Keras 3 builds; the maximum over every output element, or for MobileNetV2's
    2000 outputs over 98 of them: 40 at random plus the 20 with the largest
    measured error per dtype). The declared bound is ``atol = min(6 * sigma, W)``
    rounded up to two significant digits: 6 sigma because the max over up to
    2000 outputs of a Gaussian is about 3.5 sigma, and ``W`` because the
    first-order error cannot exceed it. ``rtol = 0``: the quantization error
    does not scale with the output. Each entry records ``W``, ``sigma`` and the
    error measured by running Keras with the quantized weights; the bound is
    1.7x (MobileNetV2 uint16, measured 3.6 sigma) to 16x the measured error.
    TF.js's own float32 rounding (above) is two orders of magnitude below
    these bounds.

    The parity tests also compare TF.js with Keras running the dequantized
    weights read back from the artifact, using the model's float32 bound, and
    check every stored weight against ``e_w`` directly; those two checks catch
    a quantization bug (an off-by-one step, a wrong scale) that these looser
    end-to-end bounds could miss.
"""

import dataclasses
from typing import Dict, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """An elementwise bound ``|actual - expected| <= atol + rtol * |expected|``.

    Attributes:
      atol: absolute term.
      rtol: relative term.
      why: where the numbers come from.
    """

    atol: float
    rtol: float
    why: str


class UnlistedToleranceError(LookupError):
    """A parity case has no declared tolerance: add one to TOLERANCES, with its reason."""


FLOAT32 = "float32"
STORAGE_DTYPES = (FLOAT32, "float16", "uint16", "uint8")

_F32 = Tolerance(atol=1e-5, rtol=1e-5,
                 why="float32 rounding only; measured floor <= 3.3e-7 * max|y| (module doc)")


def _quantized(atol: float, sigma: float, worst: float, measured: float) -> Tolerance:
    return Tolerance(atol=atol, rtol=0.0, why=(
        "min(6 sigma, worst) with first-order sigma %.2e, worst %.2e; measured %.2e"
        % (sigma, worst, measured)))


# Case names that are not zoo models: hand-written tf.Modules of the graph tier
# (tests/test_graph_parity.py), each with a float32 entry below.
NON_ZOO_CASES = ("graph_small", "graph_control_flow", "graph_hash_table")

# (zoo model or NON_ZOO_CASES name, weight storage dtype) -> Tolerance.
TOLERANCES: Dict[Tuple[str, str], Tolerance] = {
    ("mlp", FLOAT32): _F32,
    ("cnn_bn", FLOAT32): _F32,
    ("embedding_lstm", FLOAT32): _F32,
    ("gru", FLOAT32): _F32,
    ("bidirectional_lstm", FLOAT32): _F32,
    ("multi_io", FLOAT32): _F32,
    ("nested", FLOAT32): _F32,
    ("mobilenet_v2", FLOAT32): _F32,
    ("resnet50", FLOAT32): _F32,
    # Graph-model cases built in tests/test_graph_parity.py: small hand-written
    # tf.Modules (matmul, softmax, sigmoid, tanh, while/cond loops of 5 steps over
    # values of magnitude <= 10, gathers). Same float32-rounding argument as the
    # Keras models; nothing in them amplifies rounding by more than ~10x.
    ("graph_small", FLOAT32): _F32,
    ("graph_control_flow", FLOAT32): _F32,
    ("graph_hash_table", FLOAT32): _F32,

    ("mlp", "float16"): _quantized(2.7e-3, sigma=4.35e-4, worst=9.35e-3, measured=3.01e-4),
    ("mlp", "uint16"): _quantized(1.3e-4, sigma=2.11e-5, worst=5.36e-4, measured=2.34e-5),
    ("mlp", "uint8"): _quantized(3.3e-2, sigma=5.42e-3, worst=1.38e-1, measured=7.93e-3),

    ("cnn_bn", "float16"): _quantized(6.9e-3, sigma=1.15e-3, worst=2.40e-2, measured=1.03e-3),
    ("cnn_bn", "uint16"): _quantized(2.0e-4, sigma=3.24e-5, worst=1.06e-3, measured=3.03e-5),
    ("cnn_bn", "uint8"): _quantized(5.1e-2, sigma=8.34e-3, worst=2.71e-1, measured=7.93e-3),

    ("embedding_lstm", "float16"): _quantized(1.4e-4, sigma=4.02e-5, worst=1.33e-4,
                                              measured=3.47e-5),
    ("embedding_lstm", "uint16"): _quantized(3.2e-5, sigma=5.25e-6, worst=3.67e-5,
                                             measured=2.00e-6),
    ("embedding_lstm", "uint8"): _quantized(8.1e-3, sigma=1.35e-3, worst=9.43e-3,
                                            measured=5.90e-4),

    ("mobilenet_v2", "float16"): _quantized(7.3e-4, sigma=1.21e-4, worst=3.57e-2,
                                            measured=2.55e-4),
    ("mobilenet_v2", "uint16"): _quantized(3.2e-5, sigma=5.18e-6, worst=2.04e-3,
                                           measured=1.84e-5),
    ("mobilenet_v2", "uint8"): _quantized(8.0e-3, sigma=1.33e-3, worst=5.25e-1,
                                          measured=3.94e-3),
}


def lookup(model: str, storage_dtype: str) -> Tolerance:
    """The declared tolerance of a case.

    Args:
      model: zoo model name.
      storage_dtype: ``float32`` for unquantized weights, else the quantized
        storage dtype (``float16``, ``uint16``, ``uint8``).

    Returns:
      The Tolerance.

    Raises:
      UnlistedToleranceError: the case is not in TOLERANCES.
    """
    try:
        return TOLERANCES[(model, storage_dtype)]
    except KeyError:
        raise UnlistedToleranceError(
            "no tolerance declared for model %r with %s weights; add an entry with its "
            "justification to tests/tolerances.py TOLERANCES" % (model, storage_dtype)) from None


def check_close(actual: Sequence[np.ndarray], expected: Sequence[np.ndarray],
                tolerance: Tolerance, what: str) -> None:
    """Asserts outputs match elementwise within ``tolerance``.

    Args:
      actual: output arrays.
      expected: reference arrays, same count, shapes and order.
      tolerance: the bound.
      what: names the comparison in the failure message.

    Raises:
      AssertionError: counts, shapes or values differ; the message names the
        output, the worst element, its error and the bound.
    """
    if len(actual) != len(expected):
        raise AssertionError("%s: %d outputs, want %d" % (what, len(actual), len(expected)))
    problems = []
    for i, (a, e) in enumerate(zip(actual, expected)):
        a = np.asarray(a, dtype=np.float64)
        e = np.asarray(e, dtype=np.float64)
        if a.shape != e.shape:
            problems.append("output %d: shape %s, want %s" % (i, a.shape, e.shape))
            continue
        if not np.all(np.isfinite(a) == np.isfinite(e)):
            problems.append("output %d: non-finite values differ (%d non-finite, want %d)"
                            % (i, np.sum(~np.isfinite(a)), np.sum(~np.isfinite(e))))
            continue
        finite = np.isfinite(e)
        error = np.where(finite, np.abs(a - e), 0.0)
        bound = tolerance.atol + tolerance.rtol * np.abs(np.where(finite, e, 0.0))
        bad = error > bound
        if np.any(bad):
            worst = np.unravel_index(np.argmax(error - bound), error.shape)
            problems.append(
                "output %d: %d of %d elements off; worst at %s: got %.8g, want %.8g, "
                "error %.3g > bound %.3g (max error %.3g)"
                % (i, int(bad.sum()), bad.size, tuple(int(j) for j in worst), a[worst],
                   e[worst], error[worst], bound[worst], error.max()))
    if problems:
        raise AssertionError("%s exceeds tolerance atol=%g rtol=%g (%s):\n  %s" % (
            what, tolerance.atol, tolerance.rtol, tolerance.why, "\n  ".join(problems)))


def max_error(actual: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> float:
    """The largest absolute elementwise difference over all outputs (nan if shapes differ)."""
    if len(actual) != len(expected) or any(np.shape(a) != np.shape(e)
                                           for a, e in zip(actual, expected)):
        return float("nan")
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(e, np.float64))))
               for a, e in zip(actual, expected))


def weight_step_bound(original: np.ndarray, storage_dtype: str,
                      scale: float = None) -> np.ndarray:
    """Per-weight storage error bound ``e_w`` of the module doc.

    Args:
      original: the float32 weight.
      storage_dtype: ``float16``, ``uint16`` or ``uint8``.
      scale: the affine step from the manifest (uint8/uint16).

    Returns:
      The elementwise bound, with a float32 rounding allowance of the
      dequantized value (``v * scale + min`` is stored as float32).
    """
    original = np.asarray(original, np.float64)
    f32_ulp = np.abs(original) * 2.0 ** -23 + 1e-30
    if storage_dtype == "float16":
        return np.maximum(np.abs(original) * 2.0 ** -11, 2.0 ** -25) + f32_ulp
    if storage_dtype in ("uint8", "uint16"):
        if scale is None:
            raise ValueError("%s needs the manifest scale" % storage_dtype)
        return np.full(original.shape, scale / 2.0) * (1 + 1e-6) + f32_ulp
    raise ValueError("storage dtype %r, want float16, uint16 or uint8" % storage_dtype)
