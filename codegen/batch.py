"""How ``predict`` takes and returns data: one observation or a batch, images or feature vectors.

Every network computes on ``(N, H, W, C)`` arrays, and ``predict`` (the reference's,
:meth:`codegen.Network.predict`, and every built library's, :meth:`codegen.library.Library.predict`)
takes such a batch or one observation ``(H, W, C)`` and returns its outputs with the same rank.

A network whose input layer has observations of another shape (``featureInputLayer(F)``:
``(F,)``, computed as ``1 x 1 x F``) also takes one feature vector ``(F,)`` or a batch ``(N, F)``:
features in, features out. Given features, each output of size ``1 x 1 x K`` comes back as
``(K,)`` / ``(N, K)``; an output with spatial extent keeps ``(H, W, C)`` / ``(N, H, W, C)``.
Given ``(1, 1, F)`` or ``(N, 1, 1, F)``, the outputs are ``(H, W, C)`` arrays as for an image
network (the form the verifier and the ONNX binding use).
"""

from __future__ import annotations

import numpy as np


def feature_batch(x: np.ndarray, in_shape: tuple, observation: tuple) -> tuple[np.ndarray, bool] | None:
    """``x`` given as feature vectors (rank 1 or 2 for observations ``(F,)``): (x as (N, 1, 1, F),
    whether it was one observation); None if ``x`` is not in that form (the caller then expects
    ``(H, W, C)`` or ``(N, H, W, C)``). A rank-1/2 ``x`` of the wrong length raises ValueError with
    what was expected."""
    if len(observation) == 3 or x.ndim not in (len(observation), len(observation) + 1):
        return None
    single = x.ndim == len(observation)
    batch = x[None] if single else x
    if tuple(batch.shape[1:]) != tuple(observation):
        raise ValueError(f"input has shape {tuple(x.shape)}; expected ({observation[0]},) (one observation of "
                         f"{observation[0]} features) or (N, {observation[0]}), or (N, H, W, C) with H x W x C = "
                         + "x".join(map(str, in_shape)))
    return batch.reshape(batch.shape[0], *in_shape), single


def present(y, single: bool, features: bool):
    """Outputs ``(N, H, W, C)`` (one array or a tuple) in the form the input came in."""
    def one(a):
        if features and tuple(a.shape[1:3]) == (1, 1):
            a = a.reshape(a.shape[0], -1)
        return a[0] if single else a
    return tuple(one(a) for a in y) if isinstance(y, tuple) else one(y)
