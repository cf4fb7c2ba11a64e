"""Issue 12's fault table, rows of the model / training / audit layer: each must end in a clear
error (or a correct result), never in a silently wrong one or a traceback from a dependency."""
import numpy as np
import pytest

import krepes_lib as kr
from krepes_lib import losses


def _X(n=200, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_empty_landmarks_give_a_clear_error_not_an_index_error():
    with pytest.raises(ValueError, match="non-empty 2-D"):
        kr.Nystrom(kr.RBF(1.0), np.zeros((0, 4), dtype=np.float32))


def test_fit_on_empty_or_one_row_data_is_refused_with_a_message():
    X = _X()
    model = kr.NystromModel(kr.Nystrom(kr.RBF(2.0), X[:20]), h=3)
    for bad in (X[:0], X[:1]):
        with pytest.raises(ValueError, match="at least 2"):
            kr.fit(model, bad, "barlow_twins", epochs=1, batch_size=8, progress=False)


def test_simclr_with_a_batch_of_one_is_refused():
    za, zb = np.random.default_rng(0).normal(size=(2, 1, 5))
    with pytest.raises(ValueError, match="B >= 2.*identically 0"):
        losses.get("simclr").value_and_grad(za, zb)


def test_adam_with_a_huge_learning_rate_stops_with_a_message():
    X = _X(400)
    model = kr.NystromModel(kr.Nystrom(kr.RBF(2.0), X[:40]), h=4)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="diverged"):
        kr.fit(model, X, "vicreg", epochs=5, batch_size=64, lr=1e6, progress=False)


def test_resuming_another_models_checkpoint_is_refused(tmp_path):
    X = _X(300)
    ck = str(tmp_path / "ck.npz")
    kw = dict(epochs=1, batch_size=64, progress=False, checkpoint=ck)
    kr.fit(kr.NystromModel(kr.Nystrom(kr.RBF(2.0), X[:30]), h=4), X, "barlow_twins", **kw)
    other = kr.NystromModel(kr.Nystrom(kr.RBF(2.0), X[30:60]), h=4)
    with pytest.raises(ValueError, match="another run.*landmarks"):
        kr.fit(other, X, "barlow_twins", **{**kw, "epochs": 2})


def test_audit_of_empty_data_is_refused():
    X = _X()
    model = kr.NystromModel(kr.Nystrom(kr.RBF(2.0), X[:20]), h=3)
    with pytest.raises(ValueError, match="n >= 2"):
        kr.audit(model, "barlow_twins", X[:0])
