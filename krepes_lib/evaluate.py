"""Evaluation of representations: linear probe, k-NN accuracy, parameter counts.

Book: *Theory* (``book/theory.md``), section "Evaluation"; spec §4 (probe accuracy logged
per epoch) and §7 (10%-label linear probe).

* :func:`linear_probe` — multinomial logistic regression (scikit-learn, lbfgs) on
  standardised features, trained on a stratified labelled subset of the training set
  (``label_fraction`` of each class, at least one sample per class), evaluated on the
  test set. Runs on the host: device arrays are copied once.
* :func:`knn_accuracy` — majority vote among the k nearest training embeddings (cosine
  or Euclidean), streamed over blocks of test rows: at most a (b, n_train) block of
  similarities exists at a time, never n_test × n_train. Runs in Z's namespace.
* :func:`raw_feature_probe` — the same probe on the raw inputs (a baseline).
* :func:`count_parameters` — m·h + h for a model, or the entries of a dict of arrays.
"""
from __future__ import annotations

import numpy as np

from .backend import get_xp, host_rng, is_device_array, to_host
from .defaults import KNN_K, PROBE_C, PROBE_MAX_ITER

__all__ = ["linear_probe", "labelled_subset", "knn_accuracy", "raw_feature_probe",
           "count_parameters", "PROBE_C", "PROBE_MAX_ITER", "KNN_K"]

# PROBE_C, PROBE_MAX_ITER, KNN_K: see krepes_lib.defaults (the one place for defaults).


def _check_split(Z, y, what):
    """Shapes agree, at least one row and one column (an empty input is an error, not 0/0)."""
    if getattr(Z, "ndim", None) != 2:
        raise ValueError(f"{what}: Z must be a 2-D (n, h) array; got {getattr(Z, 'shape', type(Z))}.")
    if y.ndim != 1 or y.shape[0] != Z.shape[0]:
        raise ValueError(f"{what}: y must have shape (n={Z.shape[0]},); got {tuple(y.shape)}.")
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        raise ValueError(f"{what}: Z is empty (shape {tuple(Z.shape)}); pass at least one row "
                         "and one feature (check the split sizes and the model's output).")


def _host_or_device(a):
    """A device array as is; anything else (pandas, lists) as a NumPy array."""
    return a if is_device_array(a) else np.asarray(a)


def _label_kind(y) -> str:
    """"number" (bool, int, float labels), "text" (str) or "bytes"; object arrays by their items."""
    kind = y.dtype.kind
    if kind == "O":
        items = {type(v) for v in y.ravel()[:1000].tolist()}
        if items and all(issubclass(t, str) for t in items):
            return "text"
        if items and all(issubclass(t, bytes) for t in items):
            return "bytes"
        if items and all(issubclass(t, (bool, int, float, np.number, np.bool_)) for t in items):
            return "number"
        return "object"
    return {"U": "text", "S": "bytes"}.get(kind, "number")


def _check_labels(y_train, y_test, what):
    """Train and test labels must be comparable: one kind, and at least one shared class.

    A string ``"1"`` never equals an integer ``1``, so labels of different kinds (or two
    encodings such as ``" >50K"`` and ``" >50K."``) would score 0 without any error.
    """
    ytr, yte = np.asarray(to_host(y_train)), np.asarray(to_host(y_test))
    ktr, kte = _label_kind(ytr), _label_kind(yte)
    if ktr != kte:
        raise ValueError(
            f"{what}: y_train holds {ktr} labels ({ytr.dtype}) but y_test {kte} labels ({yte.dtype}); "
            "a prediction can never equal a test label of another kind, so the accuracy would be "
            "0. Encode both the same way (e.g. y.astype(int) for both).")
    if ytr.size and yte.size and not np.isin(np.unique(yte), np.unique(ytr)).any():
        raise ValueError(
            f"{what}: no class of y_test occurs in y_train (train classes {np.unique(ytr)[:5].tolist()}"
            f"..., test classes {np.unique(yte)[:5].tolist()}...), so every prediction is wrong; the "
            "two label sets are encoded differently. Encode both the same way.")


def _check_finite(xp, Z, what):
    if not bool(xp.isfinite(Z).all()):
        raise ValueError(f"{what}: the representations contain NaN/inf (did training diverge?); "
                         "k-NN on them would be meaningless.")


def labelled_subset(y, label_fraction: float, seed=0) -> np.ndarray:
    """Indices of a stratified subset: ``round(label_fraction · n_c)`` samples of each class c
    (at least 1), drawn without replacement with the host RNG ``seed``; sorted.

    ``label_fraction = 1`` returns every index.
    """
    y = np.asarray(to_host(y))
    if not 0 < label_fraction <= 1:
        raise ValueError(f"label_fraction={label_fraction} must be in (0, 1].")
    if label_fraction == 1:
        return np.arange(y.shape[0])
    rng = host_rng(seed)
    order = rng.permutation(y.shape[0])
    ys = y[order]
    classes, counts = np.unique(ys, return_counts=True)
    want = np.maximum(1, np.round(label_fraction * counts)).astype(np.int64)
    # rank of each sample within its class in the shuffled order (vectorised, no loop)
    by_class = np.argsort(ys, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(by_class)
    rank[by_class] = np.arange(ys.shape[0]) - np.repeat(starts, counts)
    cls_idx = np.searchsorted(classes, ys)
    keep = rank < want[cls_idx]
    return np.sort(order[keep])


def linear_probe(Z_train, y_train, Z_test, y_test, label_fraction: float = 0.1, seed=0,
                 C: float = PROBE_C, max_iter: int = PROBE_MAX_ITER, return_model: bool = False,
                 labelled=None):
    """Linear-probe accuracy: logistic regression on a stratified labelled subset.

    Parameters
    ----------
    Z_train : array (n_train, h)
        Training representations (NumPy or CuPy; copied to the host).
    y_train : array (n_train,) of labels (int or str)
    Z_test : array (n_test, h)
    y_test : array (n_test,) of labels, the same kind as ``y_train`` (a ValueError otherwise,
        and when no test class occurs in training: the accuracy would be a silent 0)
    label_fraction : float in (0, 1], default 0.1
        Share of each class's training samples that are labelled (:func:`labelled_subset`);
        0.1 is the "10% labels" protocol of spec §7.
    seed : int
        Draws the labelled subset.
    C : float, default :data:`PROBE_C`
        Inverse L2 strength of :class:`sklearn.linear_model.LogisticRegression`.
    max_iter : int, default :data:`PROBE_MAX_ITER`
    return_model : bool
        Also return ``(scaler, classifier, n_labelled)``.
    labelled : array of int, optional
        The labelled rows of Z_train, given explicitly (repeats allowed: a bootstrap
        resample); ``label_fraction`` and ``seed`` are then not used.

    Returns
    -------
    float
        Accuracy on the test set (and the fitted objects when ``return_model``).

    Notes
    -----
    Features are standardised with the mean and standard deviation of the labelled subset
    (:class:`sklearn.preprocessing.StandardScaler`); lbfgs fits the multinomial model.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Ztr = np.asarray(to_host(Z_train), dtype=np.float64)
    Zte = np.asarray(to_host(Z_test), dtype=np.float64)
    ytr, yte = np.asarray(to_host(y_train)), np.asarray(to_host(y_test))
    _check_split(Ztr, ytr, "linear_probe (train)")
    _check_split(Zte, yte, "linear_probe (test)")
    _check_labels(ytr, yte, "linear_probe")
    if Ztr.shape[1] != Zte.shape[1]:
        raise ValueError(f"linear_probe: train has {Ztr.shape[1]} features, test {Zte.shape[1]}.")
    if not (np.isfinite(Ztr).all() and np.isfinite(Zte).all()):
        raise ValueError("linear_probe: the representations contain NaN/inf (did training diverge?).")
    if labelled is None:
        idx = labelled_subset(ytr, label_fraction, seed)
    else:
        idx = np.asarray(labelled).ravel()
        if idx.dtype.kind not in "iu" or idx.size == 0 or idx.min() < 0 or idx.max() >= ytr.shape[0]:
            raise ValueError(f"linear_probe: labelled must be row indices of Z_train in [0, {ytr.shape[0]}); "
                             f"got {idx.size} values of dtype {idx.dtype}.")
    if np.unique(ytr[idx]).shape[0] < 2:
        raise ValueError("linear_probe: the labelled subset has fewer than 2 classes.")
    scaler = StandardScaler().fit(Ztr[idx])
    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf.fit(scaler.transform(Ztr[idx]), ytr[idx])
    acc = float((clf.predict(scaler.transform(Zte)) == yte).mean())
    if return_model:
        return acc, (scaler, clf, int(idx.shape[0]))
    return acc


def raw_feature_probe(X_train, y_train, X_test, y_test, **probe_kwargs) -> float:
    """Baseline: :func:`linear_probe` on the raw (flattened) inputs instead of representations."""
    Xtr = to_host(X_train).reshape(np.shape(X_train)[0], -1)
    Xte = to_host(X_test).reshape(np.shape(X_test)[0], -1)
    return linear_probe(Xtr, y_train, Xte, y_test, **probe_kwargs)


def knn_accuracy(Z_train, y_train, Z_test, y_test, k: int = KNN_K, metric: str = "cosine",
                 options=None) -> float:
    """k-NN classification accuracy with a plain majority vote.

    Parameters
    ----------
    Z_train, Z_test : arrays (n_train, h), (n_test, h), one namespace
    y_train, y_test : int arrays
    k : int, default :data:`KNN_K`
    metric : {"cosine", "euclidean"}
        Cosine: the largest ẑ_t·ẑ_i (rows normalised); Euclidean: the smallest ‖z_t − z_i‖.
    options : krepes_lib.Options, optional
        Its ``memory_budget``: bytes for one (b, n_train) block of scores (plus temporaries).

    Returns
    -------
    float
        Test accuracy. Ties in the vote go to the smallest label.

    Raises
    ------
    ValueError
        Empty inputs, mismatched shapes, NaN/inf representations, a bad ``k`` or ``metric``,
        train and test labels of different kinds (str against int) or with no class in common.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric={metric!r}: use 'cosine' or 'euclidean'.")
    Z_train, Z_test = _host_or_device(Z_train), _host_or_device(Z_test)  # pandas, lists
    xp = get_xp(Z_train, Z_test)
    y_tr = xp.asarray(_host_or_device(y_train))
    y_te = xp.asarray(_host_or_device(y_test))
    _check_split(Z_train, y_tr, "knn_accuracy (train)")
    _check_split(Z_test, y_te, "knn_accuracy (test)")
    _check_labels(y_tr, y_te, "knn_accuracy")
    _check_finite(xp, Z_train, "knn_accuracy (train)")
    _check_finite(xp, Z_test, "knn_accuracy (test)")
    if Z_train.shape[1] != Z_test.shape[1]:
        raise ValueError(f"knn_accuracy: train has {Z_train.shape[1]} features, test "
                         f"{Z_test.shape[1]}.")
    n_tr = Z_train.shape[0]
    if not 1 <= k <= n_tr:
        raise ValueError(f"k={k} must be between 1 and n_train={n_tr}.")
    classes, y_code = xp.unique(y_tr, return_inverse=True)
    y_code = y_code.reshape(-1)
    n_cls = int(classes.shape[0])
    Ztr = Z_train
    if metric == "cosine":
        Ztr = Ztr / xp.maximum(xp.linalg.norm(Ztr, axis=1, keepdims=True), 1e-12)
    sq_tr = (Ztr * Ztr).sum(axis=1)
    itemsize = max(Ztr.dtype.itemsize, 8)
    from .options import resolve_options

    budget = resolve_options(options).memory_budget
    b = int(max(1, min(Z_test.shape[0], budget // (itemsize * (3 * n_tr + k * n_cls)))))
    correct = 0
    for start in range(0, Z_test.shape[0], b):
        Zt = Z_test[start:start + b]
        if metric == "cosine":
            Zt = Zt / xp.maximum(xp.linalg.norm(Zt, axis=1, keepdims=True), 1e-12)
            score = Zt @ Ztr.T                                   # larger = nearer
        else:
            score = 2.0 * (Zt @ Ztr.T) - sq_tr[None, :]          # = ‖z_t‖² − ‖z_t − z_i‖²
        nn = xp.argpartition(-score, k - 1, axis=1)[:, :k] if k < n_tr else \
            xp.broadcast_to(xp.arange(n_tr)[None, :], score.shape)
        votes = (y_code[nn][:, :, None] == xp.arange(n_cls)[None, None, :]).sum(axis=1)
        pred = classes[xp.argmax(votes, axis=1)]
        correct += int((pred == y_te[start:start + b]).sum())
    return correct / Z_test.shape[0]


def count_parameters(model) -> int:
    """Parameters of a representation model: ``model.n_parameters`` (m·h + h for a
    :class:`~krepes_lib.model.NystromModel`), or the total entries of a dict of arrays."""
    if hasattr(model, "n_parameters"):
        return int(model.n_parameters)
    if isinstance(model, dict):
        return int(sum(int(np.prod(a.shape)) for a in model.values()))
    raise TypeError(f"count_parameters: need a model with n_parameters or a dict of arrays, "
                    f"got {type(model).__name__}.")
