"""Comparing compiled networks with the reference, shared by the C and CUDA tests."""

from __future__ import annotations

import numpy as np

from codegen.verify import default_tolerance, float32_condition, random_inputs, rel_error

TOL = 1e-5


def tolerance_for(net, lib, x, base: float = TOL) -> float:
    """``base``, or for a library with ops on the TF32 tensor cores (CUDA, precision tf32) the TF32
    bound of :mod:`codegen.verify` at the inputs ``x`` if larger."""
    if not lib.tensor_core_ops:
        return base
    return max(base, default_tolerance(net, x, lib.tensor_core_ops, lib.precision)[0])


def check_against_reference(nets, libs, count=2, poison=np.nan):
    """Every library's predict (a batch of ``count`` images, arena poisoned first) against the
    reference: relative error < 1e-5; or, for an output that comes from cancellation (float32
    condition > 10, see :func:`codegen.verify.float32_condition`; at most 2 % of the networks),
    < 1e-6 x the condition. A CUDA library with ops on the TF32 tensor cores gets the TF32 tolerance
    of :mod:`codegen.verify` (5 x the simulated rounding deviation, at least 2u per op, on top). Returns the
    worst error."""
    worst, ill = 0.0, []
    for net, lib in zip(nets, libs):
        lib.poison = poison
        x = random_inputs(net, count, seed=len(net.layers))
        y = lib.predict(x)
        ref = net.predict(x.astype(np.float64))
        assert y.shape == ref.shape, f"{net.name}: output shape {y.shape}, reference {ref.shape}"
        assert np.all(np.isfinite(y)), f"{net.name}: non-finite output\n{lib.plan.describe()}"
        err = max(rel_error(y[i], ref[i]) for i in range(count))
        tol = TOL
        if lib.tensor_core_ops:
            tol, _ = default_tolerance(net, x, lib.tensor_core_ops, lib.precision)
        elif err >= TOL:
            cond = float32_condition(net, x)
            if cond > 10:
                tol = 1e-6 * cond
                ill.append(f"{net.name} (error {err:.1e}, float32 condition {cond:.0f})")
        assert err < tol, f"{net.name}: relative error {err:.2e}\n{net!r}\n{lib.plan.describe()}"
        worst = max(worst, err)
    assert len(ill) <= max(1, len(nets) // 50), f"too many ill-conditioned networks: {ill}"
    if ill:
        print("ill-conditioned for float32, checked against 1e-6 x their condition:", *ill, sep="\n  ")
    return worst
