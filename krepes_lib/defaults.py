"""The project's defaults — the single place that holds them.

Every value below comes from ``../shared/spec/KREPES.md`` (section given per entry).
Where the paper is silent the spec chose a default; the book's reproduction report says
so next to each result. Code reads these values; it never repeats the literals.
"""
from __future__ import annotations

from types import MappingProxyType

# --- Nyström (spec §1) -------------------------------------------------------------
#: Eigenvalues of K_mm below ``EIGEN_RTOL * lambda_max`` are dropped (relative floor).
EIGEN_RTOL = 1e-10
#: A K_mm eigenvalue below ``-PSD_RTOL * lambda_max`` means the kernel is not PSD.
PSD_RTOL = 1e-5

# --- Optimisation (spec §4) --------------------------------------------------------
ADAM = MappingProxyType({"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8})
VIEWS = 2  # p, views per sample (spec §1)
#: Conjugate gradient (spec §4 names the knobs, not their values: project defaults).
CG = MappingProxyType({"rtol": 1e-6, "max_iter": 100, "refresh_every": 10})

# --- Losses (spec §3): hyper-parameters as keyword arguments of each loss ----------
LOSS_HYPER = MappingProxyType(
    {
        "kpca": MappingProxyType({"beta": 1.0}),
        "kae": MappingProxyType({}),
        "simple_contrastive": MappingProxyType({"rkhs_penalty": 1e-3}),
        "spectral_contrastive": MappingProxyType({}),
        "simclr": MappingProxyType({"tau": 0.5}),
        "barlow_twins": MappingProxyType({"lambda_off": 5e-3, "eps": 1e-5}),
        "vicreg": MappingProxyType(
            {"lambda_inv": 25.0, "mu": 25.0, "nu": 1.0, "eps": 1e-4}
        ),
        "byol": MappingProxyType({"ema": 0.99}),
    }
)

# --- Memory ------------------------------------------------------------------------
#: Default budget (bytes) for one streamed kernel block K_bm.
BLOCK_BYTES = 256 * 2**20
