"""krepes_lib — the KREPES companion's array library (CuPy on a GPU, NumPy otherwise).

``import krepes_lib as kr`` is all a user needs::

    import krepes_lib as kr
    X, y, X_test, y_test = kr.data.load_split("adult", n_train=5000, n_test=2000, seed=0)
    kernel = kr.RBF(sigma=kr.median_sigma(X))
    model  = kr.NystromModel(kr.Nystrom(kernel, kr.select_landmarks(X, m="sqrt", method="kmeans++")), h=32)
    audit  = kr.audit(model, "barlow_twins", X, augment="table", damping=1e-2, seed=0)
    top    = audit.top_influential(X_test, K=5)
    print(kr.linear_probe(audit.embed(X), y, audit.embed(X_test), y_test))
    kr.fit(model, X, "simclr", epochs=5, augment="table")

The layers (book: *Theory*; ``../shared/DESIGN.md``): kernels → landmarks → Nyström →
model → losses (one objective interface) → problem / curvature / optim → ``fit`` and
``audit`` → interpret, evaluate, stats and ``claims`` (the claims engine: every verdict);
``data``, ``recipe`` (the model recipe), ``views`` (view streams) and ``timing`` (the one timer)
around them.
The paper's experiments are studies one floor up (:mod:`krepes_lib.studies`); the core never
imports them.
"""
from __future__ import annotations

from . import claims, data, distributed, interpret, losses, stats, timing
from .audit import Audit, audit, load_audit
from .backend import default_xp, gpu_available, to_device, to_host
from .curvature import FalkonPrecond, GGNOperator, GGNPrecond, Preconditioner
from .exceptions import ConvergenceWarning, KrepesWarning, LossIncreaseWarning
from .evaluate import knn_accuracy, linear_probe, raw_feature_probe
from .recipe import build_model, build_nystrom, default_kernel
from .views import view_batches
from .kernels import (RBF, ArcCosineNNGP, Cosine, Kernel, Laplacian, Linear, Polynomial, ReluNTK,
                      make_kernel, median_sigma)
from .landmarks import Landmarks, class_coverage, select_landmarks
from .losses import make_objective
from .model import NystromModel
from .nystrom import Nystrom
from .options import Options
from .train import History, fit

__version__ = "0.2.0"

__all__ = [
    # modules
    "claims", "data", "distributed", "interpret", "losses", "stats", "timing",
    # kernels, landmarks, Nyström, model
    "Kernel", "RBF", "Laplacian", "Linear", "Polynomial", "Cosine", "ArcCosineNNGP", "ReluNTK",
    "make_kernel", "median_sigma", "Landmarks", "select_landmarks", "class_coverage", "Nystrom",
    "NystromModel",
    # training and the audit
    "Options", "make_objective", "fit", "History", "audit", "Audit", "load_audit", "GGNOperator",
    "Preconditioner", "FalkonPrecond", "GGNPrecond",
    # warnings
    "KrepesWarning", "ConvergenceWarning", "LossIncreaseWarning",
    # evaluation and the experiment layer
    "linear_probe", "knn_accuracy", "raw_feature_probe", "build_model", "build_nystrom", "default_kernel",
    "view_batches",
    # arrays
    "default_xp", "gpu_available", "to_device", "to_host",
]
