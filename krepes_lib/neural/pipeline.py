"""The v3 audit of a user's own network in one call: eNTK → landmarks → Nyström + PC init →
one GGN-Newton step by CG → influence.

Book: *The empirical NTK of a network* (``book/entk.md``), section "Auditing a network";
*Theory* eq. (audit-step); spec §4–§6.
"""
from __future__ import annotations

from ..audit import audit
from ..kernels import Kernel
from ..landmarks import select_landmarks
from ..model import NystromModel
from ..nystrom import Nystrom
from .ntk import TorchNTK

__all__ = ["audit_network"]


def audit_network(module, X, loss: str = "barlow_twins", *, h: int = 32, m="sqrt",
                  landmarks: str = "kmeans++", contraction="sum", implementation: str = "exact",
                  sketch_size: int = 256, augment="auto", damping: float | None = None, seed: int = 0,
                  n_batches: int = 4, batch_size: int = 256, input_shape=None, options=None):
    """Audit ``module`` (a ``torch.nn.Module`` or a ready :class:`TorchNTK`) on unlabelled rows X.

    Steps: the eNTK :class:`TorchNTK` (eq. (entk-proj)); ``m`` landmarks (default ⌈√n⌉) by
    ``landmarks`` = ``"kmeans++"`` in kernel space (eq. (lm-kmeanspp) with the kernel
    distance), ``"leverage"`` or ``"uniform"``; the Nyström basis and the PC-initialised model
    with ``h`` dimensions (lowered to the rank of K_mm); :func:`krepes_lib.audit` with
    ``loss``, ``augment``, ``damping`` and ``seed``. Returns the :class:`krepes_lib.Audit`
    (``.loss_before``/``.loss_after``, ``.top_influential(X_t, K)``, ``.embed(X)``, ...).
    """
    if isinstance(module, Kernel):
        kernel = module
    else:
        kernel = TorchNTK(module, contraction=contraction, implementation=implementation,
                          sketch_size=sketch_size, seed=seed, input_shape=input_shape)
    opts = {"kernel_space": True} if landmarks in ("kmeans++", "kmeanspp") else {}
    lm = select_landmarks(X, m=m, method=landmarks, kernel=kernel, seed=seed, **opts)
    nys = Nystrom(kernel, lm, dtype=lm.points.dtype)
    model = NystromModel(nys, h=min(int(h), nys.rank), init="pc")
    return audit(model, loss, X, augment=augment, damping=damping,
                 seed=seed, n_batches=n_batches, batch_size=batch_size, options=options)
