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


# --- issue 21 (second fault round, ../shared/reviews/faults-round2.md) ----------------------
def _model(X, m=30, h=4):
    return kr.NystromModel(kr.Nystrom(kr.RBF(2.0), X[:m]), h=h)


def _noisy(std):
    def noisy(Xb, rng):
        return Xb + rng.normal(0, std, Xb.shape).astype(Xb.dtype)
    return noisy


def _shift(Xb, rng, by):
    return Xb + by


class _Shift:  # a callable object: its repr carries a memory address
    def __init__(self, by):
        self.by = by

    def __call__(self, Xb, rng):
        return Xb + self.by


class _Opaque:  # holds a Generator: no stable description exists
    def __init__(self):
        self.gen = np.random.default_rng(0)

    def __call__(self, Xb, rng):
        return Xb


def test_d5_resume_under_another_closure_or_lambda_is_refused(tmp_path):
    """#27: two closures of one factory (or two lambdas) share a qualname; resuming a checkpoint
    made under std 0.01 with std 5.0 spliced two runs silently."""
    X, ck = _X(), str(tmp_path / "ck.npz")
    kr.fit(_model(X), X, "barlow_twins", epochs=2, batch_size=64, augment=_noisy(0.01), checkpoint=ck,
           progress=False)
    with pytest.raises(ValueError, match="augmentation .* differs.*splice"):
        kr.fit(_model(X), X, "barlow_twins", epochs=3, batch_size=64, augment=_noisy(5.0), checkpoint=ck,
               progress=False)
    ck2 = str(tmp_path / "ck2.npz")
    kr.fit(_model(X), X, "barlow_twins", epochs=1, batch_size=64, augment=lambda Xb, rng: Xb + 1,
           checkpoint=ck2, progress=False)
    with pytest.raises(ValueError, match="augmentation"):
        kr.fit(_model(X), X, "barlow_twins", epochs=2, batch_size=64, augment=lambda Xb, rng: Xb - 1,
               checkpoint=ck2, progress=False)
    h = kr.fit(_model(X), X, "barlow_twins", epochs=3, batch_size=64, augment=_noisy(0.01),
               checkpoint=ck, progress=False)  # the same augmentation (a new closure object) resumes
    assert h.epoch == [1, 2, 3]


def test_d5_partial_and_callable_object_resume_and_differ_by_their_arguments(tmp_path):
    """#28: a functools.partial or a callable-class instance made again (new address) is the same
    augmentation and resumes; other arguments are refused."""
    import functools

    X = _X()
    for make, other in ((lambda: functools.partial(_shift, by=0.1), functools.partial(_shift, by=0.2)),
                        (lambda: _Shift(0.1), _Shift(0.2))):
        ck = str(tmp_path / f"ck{id(other)}.npz")
        kr.fit(_model(X), X, "barlow_twins", epochs=1, batch_size=64, augment=make(), checkpoint=ck,
               progress=False)
        assert kr.fit(_model(X), X, "barlow_twins", epochs=2, batch_size=64, augment=make(),
                      checkpoint=ck, progress=False).epoch == [1, 2]
        with pytest.raises(ValueError, match="augmentation"):
            kr.fit(_model(X), X, "barlow_twins", epochs=3, batch_size=64, augment=other, checkpoint=ck,
                   progress=False)


def test_d5_unverifiable_augmentation_says_so(tmp_path):
    X, ck = _X(), str(tmp_path / "ck.npz")
    with pytest.warns(UserWarning, match="cannot be fingerprinted"):
        kr.fit(_model(X), X, "barlow_twins", epochs=1, batch_size=64, augment=_Opaque(), checkpoint=ck,
               progress=False)
    with pytest.raises(ValueError, match="cannot verify the augmentation.*resume=False.*TableAugmenter"), \
            pytest.warns(UserWarning):
        kr.fit(_model(X), X, "barlow_twins", epochs=2, batch_size=64, augment=_Opaque(), checkpoint=ck,
               progress=False)


def test_damaged_checkpoint_member_is_a_clear_error(tmp_path):
    """zip's CRC-32 checks every member of a fit checkpoint; a flipped byte is named, not raw."""
    import zipfile

    X, ck = _X(), tmp_path / "ck.npz"
    kr.fit(_model(X), X, "barlow_twins", epochs=1, batch_size=64, checkpoint=str(ck), progress=False)
    b = bytearray(ck.read_bytes())
    info = next(i for i in zipfile.ZipFile(ck).infolist() if i.filename.startswith("param/"))
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 140
    b[start] ^= 0x40
    ck.write_bytes(bytes(b))
    with pytest.raises(ValueError, match="damaged.*resume=False"):
        kr.fit(_model(X), X, "barlow_twins", epochs=2, batch_size=64, checkpoint=str(ck), progress=False)


@pytest.mark.parametrize("field,value,exc,msg", [
    ("lr", "0.1", TypeError, r"Options.lr='0.1' is a str.*write lr=0.1"),          # #19
    ("betas", "ab", TypeError, r"Options.betas='ab': need two numbers"),             # #19
    ("lr", float("inf"), ValueError, r"Options.lr=inf: need a finite number"),       # #21
    ("damping", float("inf"), ValueError, r"Options.damping=inf: need a finite"),    # #20
    ("damping", float("nan"), ValueError, r"Options.damping=nan"),
])
def test_options_types_and_finiteness(field, value, exc, msg):
    with pytest.raises(exc, match=msg):
        kr.Options(**{field: value})


def test_fit_with_infinite_lr_is_refused_before_training():
    X = _X()
    with pytest.raises(ValueError, match="lr=inf"):
        kr.fit(_model(X), X, "barlow_twins", epochs=1, batch_size=64, lr=float("inf"), progress=False)


def test_top_influential_refuses_an_all_zero_delta_A():
    """#20: a zero audit step ranked landmarks 0, 1, 2 with score 0 as if it meant something."""
    from krepes_lib.interpret import top_influential

    L = _X(10, 3)
    with pytest.raises(ValueError, match="all zero.*arbitrary"):
        top_influential(kr.RBF(1.0), L, _X(5, 3, seed=1), np.zeros((10, 2), np.float32), K=3)


@pytest.mark.parametrize("probe", [kr.linear_probe, kr.knn_accuracy], ids=["probe", "knn"])
def test_d6_labels_of_another_kind_are_refused(probe):
    """#13: str train labels against int test labels scored 0.0 without a word."""
    Z = _X(200, 4)
    y = (Z[:, 0] > 0).astype(np.int64)
    assert probe(Z, y, Z, y) > 0.8 and probe(Z, y.astype(str), Z, y.astype(str)) > 0.8  # #11 still works
    with pytest.raises(ValueError, match="y_train holds text labels.*y_test number labels"):
        probe(Z, y.astype(str), Z, y)
    with pytest.raises(ValueError, match="no class of y_test occurs in y_train"):
        probe(Z, np.where(y == 1, " >50K", " <=50K"), Z, np.where(y == 1, " >50K.", " <=50K."))


class _FrameLike:
    """What pandas does to the library: elementwise results whose truth value is ambiguous."""

    def __init__(self, a):
        self.a = np.asarray(a)
        self.shape, self.ndim, self.dtype = self.a.shape, self.a.ndim, self.a.dtype

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        return _FrameLike(getattr(ufunc, method)(*[np.asarray(i) for i in inputs], **kw))

    def __getitem__(self, k):
        return _FrameLike(self.a[k])

    def __len__(self):
        return len(self.a)

    def all(self, axis=0):
        return _FrameLike(self.a.all(axis=axis))

    def __bool__(self):
        raise ValueError("The truth value of a Series is ambiguous.")


def test_pandas_like_inputs_are_converted_at_the_entry_points():
    """#1: median_sigma and knn_accuracy raised pandas' 'truth value ... is ambiguous'."""
    X = _X(100, 4)
    y = (X[:, 0] > 0).astype(np.int64)
    assert kr.median_sigma(_FrameLike(X)) == kr.median_sigma(X)
    assert kr.knn_accuracy(_FrameLike(X), _FrameLike(y), _FrameLike(X), _FrameLike(y)) == \
        kr.knn_accuracy(X, y, X, y)


def test_pandas_inputs_work():
    pd = pytest.importorskip("pandas")
    X = _X(100, 4)
    y = (X[:, 0] > 0).astype(np.int64)
    assert kr.median_sigma(pd.DataFrame(X)) == kr.median_sigma(X)
    assert kr.knn_accuracy(pd.DataFrame(X), pd.Series(y), pd.DataFrame(X), pd.Series(y)) == \
        kr.knn_accuracy(X, y, X, y)


@pytest.mark.parametrize("value,exc,msg", [("nonsense", ValueError, "is not understood"),
                                           ("cupy", RuntimeError, "no usable GPU")])
def test_d7_krepes_backend_is_validated_by_the_public_api(monkeypatch, value, exc, msg):
    """#24: KREPES_BACKEND=cupy (no GPU) or a nonsense value ran the README pipeline on NumPy."""
    from krepes_lib import backend

    if value == "cupy" and backend._cupy_or_none() is not None:
        pytest.skip("a GPU is present: cupy is a valid choice here")
    X = _X()
    model = _model(X)
    monkeypatch.setenv("KREPES_BACKEND", value)
    with pytest.raises(exc, match=f"KREPES_BACKEND.*{msg}"):
        kr.NystromModel(kr.Nystrom(kr.RBF(kr.median_sigma(X)), kr.select_landmarks(X, m=20)), h=4)
    with pytest.raises(exc, match="KREPES_BACKEND"):
        kr.fit(model, X, "barlow_twins", epochs=1, batch_size=64, progress=False)
    with pytest.raises(exc, match="KREPES_BACKEND"):
        kr.audit(model, "barlow_twins", X, seed=0)
