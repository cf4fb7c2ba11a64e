"""The v3 audit of a user's own network in one call: eNTK → landmarks → Nyström + PC init →
one GGN-Newton step by CG → influence.

Book: *The empirical NTK of a network* (``book/entk.md``), sections "Auditing a network" and
"Auditing a ResNet-18"; *Theory* eq. (audit-step); spec §4–§6.
"""
from __future__ import annotations

import time

from ..audit import audit
from ..defaults import BLOCK_BYTES
from ..kernels import Kernel
from ..options import apply_feature_budget
from ..recipe import build_model
from .ntk import TorchNTK

__all__ = ["audit_network"]


def audit_network(module, X, loss: str = "barlow_twins", *, h: int = 32, m="sqrt",
                  landmarks: str = "kmeans++", contraction="sum", implementation: str = "exact",
                  error: float = 0.05, time_budget: float | None = None, sketch_size: int = 256,
                  projection_dim: int = 2048,
                  normalize: bool = False, parameters: str = "trainable", augment="auto",
                  damping: float | None = None, seed: int = 0, n_batches: int = 4, batch_size: int = 256,
                  input_shape=None, image_shape=None, layout=None, memory_budget: int = BLOCK_BYTES,
                  options=None, verbose: bool = False):
    """Audit ``module`` (a ``torch.nn.Module`` or a ready :class:`TorchNTK`) on unlabelled rows X.

    Steps: the eNTK :class:`TorchNTK` (eq. (entk-proj); ``implementation="auto"`` chooses
    exact / CountSketch projection / forward-mode sketch from a cost model and ``error`` and
    prints the estimated time first; ``time_budget`` seconds cap the features' time); ``m`` landmarks (default ⌈√n⌉) by ``landmarks`` =
    ``"kmeans++"`` in kernel space (eq. (lm-kmeanspp) with the kernel distance, run on the
    eNTK features, each row computed once), ``"leverage"`` or ``"uniform"``; the Nyström
    basis and the PC-initialised model with ``h`` dimensions (lowered to the rank of K_mm) —
    the one recipe, :func:`krepes_lib.build_model` with ``landmark_space="kernel"``;
    :func:`krepes_lib.audit` with ``loss``, ``augment`` (``"auto"``: image augmentations when
    the kernel is told ``image_shape``), ``damping`` and ``seed``. Every row's eNTK features
    are computed once and shared by all steps (:mod:`krepes_lib.neural.features`).

    Images: pass the data's ``image_shape`` (``split.image_shape``, channels last, as the
    loaders flatten them) and the network's ``layout`` (``"NCHW"`` for torchvision-style
    networks). ``normalize=True`` audits the normalised eNTK k/√(k(x,x)k(x′,x′)).

    Returns the :class:`krepes_lib.Audit` (``.summary(X_t)``, ``.top_influential(X_t, K)``,
    ``.embed(X)``, ``.save(path)``, ...); ``verbose=True`` prints each step's time.
    """
    if options is not None:
        apply_feature_budget(options)
    if isinstance(module, Kernel):
        kernel = module
    else:
        kernel = TorchNTK(module, contraction=contraction, implementation=implementation,
                          sketch_size=sketch_size, projection_dim=projection_dim, error=error,
                          time_budget=time_budget, seed=seed,
                          input_shape=input_shape, image_shape=image_shape, layout=layout,
                          parameters=parameters, normalize=normalize, memory_budget=memory_budget)
    t0 = time.perf_counter()
    if getattr(kernel, "implementation_used", "") is None:  # "auto": plan (and print) first
        views = 2 * int(n_batches) * min(int(batch_size), len(X))
        kernel.plan(X, n_rows=len(X) + views, verbose=True)

    def say(what):
        if verbose:
            print(f"audit_network: {what} ({time.perf_counter() - t0:.1f} s)", flush=True)

    model = build_model(X, h, m=m, kernel=kernel, landmarks=landmarks, seed=seed, landmark_space="kernel")
    say(f"{model.m} landmarks by {landmarks}")
    say(f"Nyström basis, rank {model.nystrom.rank}, h = {model.h}")
    out = audit(model, loss, X, augment=augment, damping=damping,
                seed=seed, n_batches=n_batches, batch_size=batch_size, options=options)
    say(f"audit step: loss {out.loss_before:.4g} → {out.loss_after:.4g}, CG {out.cg.iterations} iterations")
    return out
