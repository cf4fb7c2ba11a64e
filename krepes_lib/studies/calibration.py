"""What a measurement can reach: ceilings, controls and power for the v3 verdicts.

Book: *Interpretability* eqs. (int-tau), (int-tau-ceiling), (int-drop-m); *Reproduction report*
("Calibrated verdicts"); spec §6–§7.

A verdict says something about KREPES only when the measurement could have shown it. This
module computes, next to each v3 number, what the same measurement reaches when nothing but
its own noise differs:

* :func:`tau_readings` — the three readings of "Kendall-τ between the network's and KREPES'
  probe" (the paper never says which quantity is ranked): τ of the predicted-class
  probabilities (spec §6, the **max** reading), τ of the pooled n × C probability matrix
  (**pooled**) and the share of test points both probes put in the same class
  (**agreement**), eq. (int-tau);
* :func:`same_features_ceiling` — the same readings between two probes on the **same**
  features that differ only in their labelled rows: a stratified bootstrap of the labelled
  rows (``"bootstrap"``) or another labelled subset of the same size (``"subset"``), eq.
  (int-tau-ceiling). The measurement cannot ask a KREPES probe to agree with the network's
  probe better than the network's probe agrees with itself refit on another labelled sample;
  the calibrated τ rule is non-inferiority to this ceiling;
* :func:`bootstrap_rows`, :func:`other_subset` — the labelled rows of the two ceilings;
* :func:`probe_scores` — a linear probe's accuracy, class probabilities and per-row
  correctness (the input of the paired bootstrap over test rows,
  :func:`krepes_lib.stats.paired_bootstrap`);
* :func:`drop_capacity` — the largest k-NN confidence a class can reach when the m landmarks
  are spread evenly over C classes, min(1, m / (C k)), eq. (int-drop-m): below m = C·k the
  confidence drop of eq. (int-drop) is capped by the landmarks, not by the audit.

Everything here evaluates (it reads labels); nothing decides: the rules are the claims
engine's (:mod:`krepes_lib.claims`).
"""
from __future__ import annotations

import numpy as np

from ..backend import host_rng, to_host
from ..evaluate import labelled_subset, linear_probe
from ..interpret import kendall_tau

__all__ = ["tau_readings", "READINGS", "probe_scores", "bootstrap_rows", "other_subset",
           "same_features_ceiling", "CEILINGS", "labelled_rows", "drop_capacity"]

#: The readings of "Kendall-τ between two probes", eq. (int-tau), in the order the tables print them.
READINGS = ("tau", "tau_pooled", "agreement")


def tau_readings(P_a, P_b) -> dict:
    """The three readings of agreement between two probes' class probabilities, eq. (int-tau).

    ``P_a``, ``P_b``: (n, C) probabilities of the same classes on the same test rows. Returns
    ``tau`` (Kendall τ-b of the per-row predicted-class probabilities max_c P[t, c], spec §6),
    ``tau_pooled`` (τ-b of the n·C entries of the two matrices) and ``agreement`` (share of
    rows whose argmax is the same class). All three are 1 for identical probabilities.
    """
    P_a, P_b = np.asarray(to_host(P_a), dtype=np.float64), np.asarray(to_host(P_b), dtype=np.float64)
    if P_a.ndim != 2 or P_a.shape != P_b.shape or P_a.shape[0] < 2:
        raise ValueError(f"tau_readings: P_a and P_b must be (n, C) probabilities of one shape with n >= 2; "
                         f"got {P_a.shape} and {P_b.shape}.")
    return {"tau": kendall_tau(P_a.max(axis=1), P_b.max(axis=1)),
            "tau_pooled": kendall_tau(P_a.ravel(), P_b.ravel()),
            "agreement": float((P_a.argmax(axis=1) == P_b.argmax(axis=1)).mean())}


def probe_scores(Z, y, Z_test, y_test, rows) -> dict:
    """A linear probe (:func:`krepes_lib.linear_probe`) fit on the labelled ``rows`` of Z.

    Returns ``acc``, ``P`` (n_test, C) probabilities of the classes ``classes`` (those of the
    labelled rows, sorted), ``correct`` (n_test,) booleans and ``n_labelled`` (``len(rows)``,
    repeats counted).
    """
    acc, (scaler, clf, n_lab) = linear_probe(Z, y, Z_test, y_test, labelled=np.asarray(rows),
                                             return_model=True)
    Zt = np.asarray(to_host(Z_test), dtype=np.float64)
    P = clf.predict_proba(scaler.transform(Zt))
    correct = clf.classes_[P.argmax(axis=1)] == np.asarray(to_host(y_test))
    return {"acc": float(acc), "P": P, "classes": clf.classes_, "correct": correct, "n_labelled": int(n_lab)}


def bootstrap_rows(y, rows, seed) -> np.ndarray:
    """A stratified bootstrap resample of the labelled ``rows``: within each class, as many rows
    as it has, drawn with replacement from its own labelled rows (host RNG ``seed``)."""
    y, rows = np.asarray(to_host(y)), np.asarray(rows)
    rng = host_rng(seed)
    out = [rng.choice(rows[y[rows] == c], size=int((y[rows] == c).sum()), replace=True)
           for c in np.unique(y[rows])]
    return np.sort(np.concatenate(out))


def other_subset(y, rows, seed) -> np.ndarray:
    """Another labelled subset: per class, as many rows as ``rows`` has of it, drawn without
    replacement from the class's rows **not** in ``rows`` (all of them when fewer remain, at
    least one: then it overlaps ``rows``)."""
    y, rows = np.asarray(to_host(y)), np.asarray(rows)
    rng = host_rng(seed)
    free = np.ones(y.shape[0], bool)
    free[rows] = False
    out = []
    for c in np.unique(y[rows]):
        want = int((y[rows] == c).sum())
        pool = np.flatnonzero(free & (y == c))
        if pool.size == 0:
            pool = rows[y[rows] == c]
        out.append(rng.choice(pool, size=min(want, pool.size), replace=False))
    return np.sort(np.concatenate(out))


def same_features_ceiling(Z, y, Z_test, y_test, rows, method: str = "subset", n_draws: int = 4,
                          seed=0, reference: dict | None = None) -> dict:
    """The agreement two probes on the **same** features reach, eq. (int-tau-ceiling).

    Probe A is fit on the labelled ``rows`` (the rows both probes of the comparison use); probe
    B on the same features Z with other labelled rows: ``method="subset"`` — another labelled
    subset with the same class counts, disjoint from ``rows`` (:func:`other_subset`);
    ``"bootstrap"`` — a stratified bootstrap of ``rows`` (:func:`bootstrap_rows`). The readings
    are averaged over ``n_draws`` draws (seeded by ``seed`` and the draw). ``reference``: probe
    A's :func:`probe_scores` when already computed. Returns the :data:`READINGS` (same keys as
    :func:`tau_readings`) and ``n`` (the probes B fit).

    "subset" is what the network agrees with itself when its probe is fit on another labelled
    sample of the same size (two independent estimates of the same probe); "bootstrap" keeps
    most labelled rows and is the higher of the two.
    """
    if method not in ("bootstrap", "subset"):
        raise ValueError(f"method={method!r}: use 'subset' (another labelled subset) or 'bootstrap' "
                         "(resample the labelled rows).")
    if int(n_draws) < 1:
        raise ValueError(f"n_draws={n_draws} must be >= 1.")
    A = reference or probe_scores(Z, y, Z_test, y_test, rows)
    draw, tag = (bootstrap_rows, 0xB0) if method == "bootstrap" else (other_subset, 0x5B)
    vals = []
    for b in range(int(n_draws)):
        B = probe_scores(Z, y, Z_test, y_test, draw(y, rows, [*np.atleast_1d(seed).tolist(), tag, b]))
        if not np.array_equal(A["classes"], B["classes"]):
            raise ValueError("same_features_ceiling: the two labelled sets hold different classes.")
        vals.append(tau_readings(A["P"], B["P"]))
    return {k: float(np.mean([v[k] for v in vals])) for k in READINGS} | {"n": len(vals)}


#: The same-features ceilings :func:`krepes_lib.studies.v3.probe_pair` computes, by row-key prefix.
CEILINGS = {"ceil_subset": "subset", "ceil_boot": "bootstrap"}


def labelled_rows(y, label_fraction: float, seed) -> np.ndarray:
    """The labelled rows of a probe (:func:`krepes_lib.evaluate.labelled_subset`)."""
    return labelled_subset(np.asarray(to_host(y)), label_fraction, seed)


def drop_capacity(m: int, n_classes: int, k: int) -> float:
    """Largest k-NN confidence of a class whose landmarks are an even share m / C of the m
    landmarks: min(1, (m / C) / k), eq. (int-drop-m). At m = 120, C = 10, k = 50 it is 0.24:
    the drop of eq. (int-drop) is then bounded by the landmarks, not measured by the audit."""
    if min(int(m), int(n_classes), int(k)) < 1:
        raise ValueError(f"m={m}, n_classes={n_classes} and k={k} must be positive.")
    return min(1.0, (int(m) / int(n_classes)) / int(k))
