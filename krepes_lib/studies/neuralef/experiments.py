"""The experiment steps of notebook 10 (the notebook only calls these): agreement measures, the
classic-kernel runs of seed Figs. 2–3, training time vs N, the NTK experiment of Figs. 4–5 and the
NeuralEF → KREPES bridge.

Book: *NeuralEF vs Nyström* (``book/neuralef.md``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ...kernels import Kernel
from ...stats import fit_loglog
from ...timing import Timer, per_point
from .bridge import CollapsedModel, neuralef_pc_model, nystrom_eigenfunctions
from .kernels import RandomFeatureKernel, entk_features, exact_entk_features
from .networks import ParallelCNN, ParallelMLP, SharedMLP, SmallCNN, train_classifier
from .objective import NeuralEF, eigenvalue_estimate

__all__ = ["abs_cosine", "subspace_overlap", "classic_kernel_run", "timing_vs_n", "cluster_accuracy",
           "projection_run", "eigenvalue_error", "ntk_experiment", "bridge_run"]

#: The seed's resolution limit (§6 "Limitations"): NeuralEF "has difficulties capturing the
#: eigenpairs with relatively small eigenvalues (e.g., 1% of the largest eigenvalue)".
RESOLUTION = 0.01


def abs_cosine(P, T):
    """|cos| between matching columns of P and T (n, k): sign-free eigenfunction agreement."""
    P = np.asarray(P, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if P.shape != T.shape:
        raise ValueError(f"abs_cosine: P {P.shape} and T {T.shape} must have the same shape.")
    return np.abs((P * T).sum(0)) / (np.linalg.norm(P, axis=0) * np.linalg.norm(T, axis=0) + 1e-300)


def subspace_overlap(P, T) -> float:
    """‖Q_Pᵀ Q_T‖²_F / k ∈ [0, 1] for the column spans of P and T (n, k): the mean squared cosine
    of the principal angles; 1 when the spans agree whatever the basis inside them (the measure
    for near-degenerate eigenvalues, where single eigenfunctions are not identifiable)."""
    P = np.asarray(P, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if P.shape != T.shape:
        raise ValueError(f"subspace_overlap: P {P.shape} and T {T.shape} must have the same shape.")
    Qp, _ = np.linalg.qr(P)
    Qt, _ = np.linalg.qr(T)
    return float(np.sum((Qp.T @ Qt) ** 2) / P.shape[1])


def classic_kernel_run(kernel: Kernel, X_train, X_eval, truth, k: int = 10, iterations: int = 2000,
                       width: int = 32, activation: str = "sincos", lr: float = 1e-3,
                       batch_size: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """NeuralEF and Nyström on the same N = len(X_train) samples vs the ground truth.

    ``truth`` = ``nystrom_eigenfunctions(kernel, X_big, k)`` (a large-N Nyström, seed §4.1).
    Eigenfunctions are compared on ``X_eval`` by :func:`abs_cosine`; eigenvalues directly.
    Networks: ``k`` 3-layer MLPs of ``width`` with sin/cos units (seed App. B).
    """
    mu_t, psi_t = truth[0], truth[1]
    X_train = np.asarray(X_train, dtype=np.float32)
    net = ParallelMLP(X_train.shape[1], k, width=width, depth=3, activation=activation, seed=seed)
    nef = NeuralEF(net, k, lr=lr).fit(X_train, kernel, iterations=iterations, batch_size=batch_size,
                                       seed=seed, progress=progress)
    mu_n, psi_n, t_nys = nystrom_eigenfunctions(kernel, X_train, k)
    T = psi_t(X_eval)
    P, Nn = nef.predict(X_eval), psi_n(X_eval)
    return dict(cos_nef=abs_cosine(P, T), cos_nys=abs_cosine(Nn, T), overlap_nef=subspace_overlap(P, T),
                overlap_nys=subspace_overlap(Nn, T), mu_nef=nef.eigenvalues,
                mu_nys=mu_n, mu_truth=mu_t[:k], seconds_nef=nef.history.seconds, seconds_nys=t_nys,
                psi_nef=P, psi_nys=Nn, psi_truth=T)


def timing_vs_n(kernel: Kernel, low: float, high: float, ns, k: int = 10, iterations: int = 2000,
                width: int = 32, batch_size: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """Training time vs sample size (seed Fig. 2 right): Nyström (kernel matrix + ``eigh``
    top-k) and NeuralEF (``iterations`` steps, B = min(N, ``batch_size``)) on N ~ U[low, high]
    (1-D). Returns times, log-log slopes over the three largest N, and the crossover N (where
    Nyström becomes slower; if not reached, extrapolated from t_nys ∝ N³ at the largest N)."""
    rng = np.random.default_rng(seed)
    t_nys, t_nef = [], []
    for n in ns:
        X = rng.uniform(low, high, (int(n), 1)).astype(np.float32)
        t_nys.append(nystrom_eigenfunctions(kernel, X, min(k, int(n)))[2])
        nef = NeuralEF(ParallelMLP(1, k, width=width, seed=seed), k).fit(
            X, kernel, iterations=iterations, batch_size=batch_size, seed=seed, progress=progress)
        t_nef.append(nef.history.seconds)
    ns = np.asarray(ns, dtype=np.float64)
    t_nys, t_nef = np.asarray(t_nys), np.asarray(t_nef)
    sl = slice(-3, None)
    slope_nys = fit_loglog(ns[sl], t_nys[sl], n_boot=1).slope  # eq. (sc-loglog): the one log-log fit
    slope_nef = fit_loglog(ns[sl], t_nef[sl], n_boot=1).slope
    above = np.nonzero(t_nys > t_nef)[0]
    if above.size and above[0] > 0:
        i = above[0]
        # log-log interpolation of the difference between grid points i-1 and i
        d0 = math.log(t_nys[i - 1] / t_nef[i - 1])
        d1 = math.log(t_nys[i] / t_nef[i])
        a = d0 / (d0 - d1)
        cross, how = float(math.exp(math.log(ns[i - 1]) + a * (math.log(ns[i]) - math.log(ns[i - 1])))), "measured"
    elif above.size:
        cross, how = float(ns[0]), "below the smallest N"
    else:
        cross = float(ns[-1] * (t_nef[-1] / t_nys[-1]) ** (1 / 3))
        how = "extrapolated (t_nys ∝ N³ from the largest N)"
    return dict(ns=ns, seconds_nys=t_nys, seconds_nef=t_nef, slope_nys=slope_nys,
                slope_nef=slope_nef, crossover_n=cross, crossover_how=how)


def cluster_accuracy(Z, y, seed: int = 0) -> float:
    """2-means on Z, accuracy under the better of the two label assignments (seed §4.2.2)."""
    from sklearn.cluster import KMeans

    y = np.asarray(y)
    if np.unique(y).size != 2:
        raise ValueError("cluster_accuracy: y must hold exactly two classes.")
    lab = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(np.asarray(Z, dtype=np.float64))
    acc = float((lab == (y == y.max())).mean())
    return max(acc, 1.0 - acc)


def projection_run(X_train, y_train, X_test, y_test, kernel: Kernel, net: str = "cnn", k: int = 10,
                   iterations: int = 1000, image_shape=None, widths=(8, 16), hidden: int = 32,
                   batch_norm: bool = True, width: int = 64, batch_size: int = 256, seed: int = 0,
                   progress: bool = False) -> dict:
    """One NeuralEF row of seed Table 1: k eigenfunction networks trained on ``kernel`` over
    X_train, then multinomial logistic regression (all training labels) on the projections
    ψ̂(X) of the training and test rows (seed §4.2.1).

    ``net``: "cnn" — k :class:`ParallelCNN` of the kernel's architecture with batch
    normalisation (seed App. B; ``widths``, ``hidden`` per network, ``image_shape`` needed), or
    "mlp" — k 3-layer ReLU :class:`ParallelMLP` of ``width``. Returns the test accuracy, the
    training wall and CPU seconds, the iterations, the loss at the first and last record (the
    method ran as intended when it fell), the eigenvalue estimates and the test seconds per point.
    """
    from ...evaluate import linear_probe

    Xtr = np.asarray(X_train, dtype=np.float32)
    Xte = np.asarray(X_test, dtype=np.float32)
    if net == "cnn":
        if image_shape is None:
            raise ValueError("projection_run(net='cnn') needs image_shape=(H, W) or (H, W, C) of the flattened rows.")
        body = ParallelCNN(image_shape, k, widths=widths, hidden=hidden, batch_norm=batch_norm, seed=seed)
    elif net == "mlp":
        body = ParallelMLP(Xtr.shape[1], k, width=width, activation="relu", seed=seed)
    else:
        raise ValueError(f"net={net!r}: use 'cnn' (seed App. B) or 'mlp'.")
    nef = NeuralEF(body, k).fit(Xtr, kernel, iterations=iterations, batch_size=batch_size, seed=seed,
                                progress=progress)
    acc = linear_probe(nef.predict(Xtr), y_train, nef.predict(Xte), y_test, label_fraction=1.0)
    h = nef.history
    return dict(acc=float(acc), seconds=h.seconds - h.kernel_seconds, cpu_seconds=h.cpu_seconds,
                iterations=h.iterations, loss_first=h.loss[0], loss_last=h.loss[-1],
                mu=np.asarray(nef.eigenvalues), sec_point=per_point(nef.predict, Xte[:200]),
                n_params=int(sum(p.numel() for p in body.parameters())) // k)


def eigenvalue_error(mu_hat, mu, resolution: float = RESOLUTION) -> dict:
    """Median relative eigenvalue error |μ̂_j − μ_j| / μ_j over the eigenvalues the method can
    resolve, μ_j ≥ ``resolution`` · μ₁ (seed §6: about 1 % of the largest), beside the same
    median over all k.

    Returns ``error`` (over the resolved ones), ``error_all``, ``n_resolved`` and ``rel``
    (the k relative errors). ``mu`` is the exact spectrum in decreasing order.
    """
    mu_hat = np.asarray(mu_hat, dtype=np.float64).ravel()
    mu = np.asarray(mu, dtype=np.float64).ravel()
    if mu_hat.shape != mu.shape or mu.size == 0:
        raise ValueError(f"eigenvalue_error: mu_hat {mu_hat.shape} and mu {mu.shape} must be the same non-empty length.")
    if not (mu[0] > 0 and np.all(np.diff(mu) <= 0)):
        raise ValueError("eigenvalue_error: mu must be the exact eigenvalues in decreasing order, mu[0] > 0.")
    if not 0 <= resolution < 1:
        raise ValueError(f"resolution={resolution} must be in [0, 1) (a fraction of the largest eigenvalue).")
    rel = np.abs(mu_hat - mu) / np.where(mu > 0, mu, np.nan)
    ok = mu >= resolution * mu[0]
    return dict(error=float(np.median(rel[ok])), error_all=float(np.nanmedian(rel)),
                n_resolved=int(ok.sum()), rel=rel)


def ntk_experiment(X_train, y_train, X_test, y_test, image_shape, k: int = 10, cnn_width: int = 8,
                   epochs: int = 10, n_rf: int = 10, nef_width: int = 64, iterations: int = 1000,
                   batch_size: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """Seed Figs. 4-5 with a small CNN (ResNet-20 in the seed): the eNTK of a trained binary
    classifier, NeuralEF vs random features vs the exact Jacobian kernel.

    1. :class:`SmallCNN` trained on (X_train, y_train) with the logistic loss;
    2. NeuralEF (k :class:`ParallelMLP` of ``nef_width``, ReLU) on the **exact** Jacobian kernel
       J Jᵀ of the training images (the seed uses eq. (20) with S = 4000; our network is small
       enough for per-sample gradients);
    3. on X_test: the exact kernel J Jᵀ (ground truth), NeuralEF's Σ μ̂ ψ̂ψ̂ᵀ, random features
       with S = ``n_rf`` directions (eq. 20; S = k matches NeuralEF's k network passes), and the
       best rank-k approximation (eigh of the exact kernel) as the floor;
    4. top-k eigenvalues: NeuralEF's μ̂ vs the eigenvalues of J Jᵀ/n on the training images;
       beside them what the measurement can reach and whether the learner got there:
       ``mu_floor`` — NeuralEF's own estimator (:func:`eigenvalue_estimate`, same batches, same
       EMA) applied to the exact eigenvectors, and ``cos_train`` — |cos| of ψ̂_j with the exact
       eigenvector u_j on the training images; ``loss_first``/``loss_last`` of the training;
    5. 2-means accuracy on the test projections (NeuralEF ψ̂, random features, raw pixels).
    """
    clf = SmallCNN(tuple(image_shape), width=cnn_width, seed=seed)
    train_acc = train_classifier(clf, X_train, y_train, epochs=epochs, seed=seed, progress=progress)
    clf.eval()
    with torch.no_grad():
        test_acc = float(((clf(torch.as_tensor(X_test)) > 0).numpy() == (np.asarray(y_test) == 1)).mean())
    n_params = int(sum(p.numel() for p in clf.parameters()))
    exact = RandomFeatureKernel(feature_fn=lambda Xb: exact_entk_features(clf, Xb), n_samples=1)
    J_tr = exact.features(X_train).astype(np.float64)
    n = J_tr.shape[0]
    U, s, _ = np.linalg.svd(J_tr, full_matrices=False)  # J Jᵀ = U diag(s²) Uᵀ
    mu_truth = (s[:k] ** 2) / n
    net = ParallelMLP(int(np.prod(image_shape)), k, width=nef_width, depth=3, activation="relu", seed=seed)
    nef = NeuralEF(net, k).fit(X_train, exact, iterations=iterations, batch_size=batch_size, seed=seed,
                               progress=progress)
    mu_floor = eigenvalue_estimate(U[:, :k] * math.sqrt(n), J_tr, iterations, batch_size, seed, ema=nef.ema)
    cos_train = abs_cosine(nef.predict(X_train), U[:, :k])
    J_te = exact.features(X_test).astype(np.float64)
    K = J_te @ J_te.T
    K_nef = nef.kernel_approx(X_test).astype(np.float64)
    rf = entk_features(clf, n_samples=n_rf, seed=seed)
    F_rf = rf.features(X_test).astype(np.float64)
    K_rf = F_rf @ F_rf.T / rf.n_samples
    w, V = np.linalg.eigh(K)
    K_best = (V[:, -k:] * w[-k:]) @ V[:, -k:].T
    nrm = np.linalg.norm(K)
    Psi_te = nef.predict(X_test)
    return dict(
        train_acc=train_acc, test_acc=test_acc, n_params=n_params,
        mu_truth=mu_truth, mu_nef=np.asarray(nef.eigenvalues), mu_floor=mu_floor, cos_train=cos_train,
        loss_first=nef.history.loss[0], loss_last=nef.history.loss[-1],
        err_nef=float(np.linalg.norm(K_nef - K) / nrm), err_rf=float(np.linalg.norm(K_rf - K) / nrm),
        err_best=float(np.linalg.norm(K_best - K) / nrm),
        K=K, K_nef=K_nef, K_rf=K_rf,
        kmeans_nef=cluster_accuracy(Psi_te, y_test, seed), kmeans_rf=cluster_accuracy(F_rf, y_test, seed),
        kmeans_raw=cluster_accuracy(X_test, y_test, seed),
        sec_point_nef=per_point(nef.predict, X_test),
        sec_point_rf=per_point(rf.feature_fn, X_test),  # the uncached map (features() would hit its cache)
        sec_point_exact=per_point(exact.feature_fn, X_test),
        seconds_nef=nef.history.seconds,
    )


def bridge_run(X_train, y_train, X_test, y_test, kernel: Kernel, m: int, h: int, k: int | None = None,
               iterations: int = 1000, width: int = 64, epochs: int = 3, batch_size: int = 256,
               loss: str = "kpca", label_fraction: float = 0.1, net: str = "parallel", seed: int = 0,
               progress: bool = False) -> dict:
    """Nyström PC init vs NeuralEF init for a KREPES model (eq. (nys-pc) vs (nef-bridge)).

    Both arms use the same kernel and the same training rows. Nyström: m uniform landmarks
    (``seed``), Ã₀ = U_hΛ_h^{-1/2}. NeuralEF: a :class:`SharedMLP` of ``width`` with k ≥ h
    outputs trained on the kernel, then :func:`neuralef_pc_model` (linear kernel on φ, m
    landmarks). Each model is probed (10 %-label linear probe) at the initialisation and after
    ``epochs`` of ``loss`` (no augmentation); the trained NeuralEF model is evaluated through
    :class:`CollapsedModel`. Timed: initialisation (landmarks + eigh, or NeuralEF training +
    φ of the training rows), training epochs, and test-time seconds per point.
    ``net``: "parallel" (k networks, :class:`ParallelMLP`, ReLU) or "shared" (:class:`SharedMLP`).
    ``m_break_even`` = m · t_nef / t_nys: the number of landmarks at which the Nyström model's
    test cost (linear in m) would equal NeuralEF's.
    """
    from ...evaluate import linear_probe
    from ...recipe import build_model
    from ...train import fit

    k = int(k or h)
    Xtr = np.asarray(X_train, dtype=np.float32)
    Xte = np.asarray(X_test, dtype=np.float32)

    def probe(a, b):
        return linear_probe(a, y_train, b, y_test, label_fraction=label_fraction, seed=seed)

    if net not in ("parallel", "shared"):
        raise ValueError(f"net={net!r}: use 'parallel' (k networks) or 'shared' (one trunk).")
    out, T = {}, Timer()
    # -- Nyström PC init
    with T("init_seconds_nys"):
        model = build_model(Xtr, h, m=m, kernel=kernel, landmarks="uniform", seed=seed)
    out["probe0_nys"] = probe(model.embed(Xtr), model.embed(Xte))
    with T("train_seconds_nys"):
        fit(model, Xtr, loss, epochs=epochs, batch_size=batch_size, seed=seed, augment=None, progress=progress)
    out["probe1_nys"] = probe(model.embed(Xtr), model.embed(Xte))
    out["test_sec_point_nys"] = per_point(model.embed, Xte)
    # -- NeuralEF init
    with T("init_seconds_nef"):
        body = (ParallelMLP(Xtr.shape[1], k, width=width, activation="relu", seed=seed) if net == "parallel"
                else SharedMLP(Xtr.shape[1], k, width=width, seed=seed))
        nef = NeuralEF(body, k).fit(
            Xtr, kernel, iterations=iterations, batch_size=batch_size, seed=seed, progress=progress)
        model2, Z = neuralef_pc_model(nef, Xtr, m, h, seed=seed)
    out["probe0_nef"] = probe(model2.embed(Z), model2.embed(nef.features(Xte)))
    with T("train_seconds_nef"):
        fit(model2, Z, loss, epochs=epochs, batch_size=batch_size, seed=seed, augment=None, progress=progress)
    out.update(T.seconds)
    col = CollapsedModel(model2, nef)
    out["probe1_nef"] = probe(col.embed(Xtr), col.embed(Xte))
    out["test_sec_point_nef"] = per_point(col.embed, Xte)
    out["mu_nef"] = np.asarray(nef.eigenvalues)
    out["m_break_even"] = m * out["test_sec_point_nef"] / out["test_sec_point_nys"]
    return out
