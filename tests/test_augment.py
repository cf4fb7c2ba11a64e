"""The vectorised augmentations against per-sample loops written from the module docstring,
drawing the same random numbers in the same order (so the RNG streams are part of the test:
a seed gives the same views as before the vectorisation)."""
import numpy as np
import pytest

from krepes_lib.augment import ImageAugmenter, TableAugmenter


def table_reference(X, rng, corrupt_frac, noise_std):
    B, d = X.shape
    out = X.copy()
    if corrupt_frac > 0:
        mask = rng.random((B, d)) < corrupt_frac
        donor = rng.integers(0, B, size=(B, d))
        for i in range(B):
            for j in range(d):
                if mask[i, j]:
                    out[i, j] = X[donor[i, j], j]
    if noise_std > 0:
        std = X.std(axis=0)
        noise = rng.standard_normal((B, d), dtype=np.float32).astype(X.dtype)
        for i in range(B):
            out[i] = out[i] + noise[i] * (std * X.dtype.type(noise_std))
    return out


def image_reference(aug, X, rng):
    H, W, C = aug.image_shape
    B = X.shape[0]
    imgs = X.reshape(B, H, W, C)
    p = aug.pad
    out = np.empty_like(imgs)
    if p > 0 or aug.flip:
        oy = rng.integers(0, 2 * p + 1, size=B)
        ox = rng.integers(0, 2 * p + 1, size=B)
        flipped = rng.random(B) < 0.5 if aug.flip else np.zeros(B, bool)
        for b in range(B):
            padded = np.zeros((H + 2 * p, W + 2 * p, C), X.dtype)
            padded[p:p + H, p:p + W] = imgs[b]
            crop = padded[oy[b]:oy[b] + H, ox[b]:ox[b] + W]
            out[b] = crop[:, ::-1] if flipped[b] else crop
    else:
        out[:] = imgs
    if aug.noise_std > 0:
        noise = rng.standard_normal((B, H, W, C), dtype=np.float32).astype(X.dtype)
        for b in range(B):
            out[b] = out[b] + noise[b] * X.dtype.type(aug.noise_std)
            if aug.clip:
                out[b] = np.clip(out[b], 0.0, 1.0)
    if aug.erase_prob > 0:
        chosen = rng.random(B) < aug.erase_prob
        area = rng.uniform(*aug.erase_scale, size=B) * H * W
        ratio = np.exp(rng.uniform(np.log(aug.erase_ratio[0]), np.log(aug.erase_ratio[1]), size=B))
        eh = np.clip(np.round(np.sqrt(area * ratio)), 1, H).astype(int)
        ew = np.clip(np.round(np.sqrt(area / ratio)), 1, W).astype(int)
        y0 = (rng.random(B) * (H - eh + 1)).astype(int)
        x0 = (rng.random(B) * (W - ew + 1)).astype(int)
        for b in range(B):
            if chosen[b]:
                out[b, y0[b]:y0[b] + eh[b], x0[b]:x0[b] + ew[b]] = 0
    return out.reshape(B, H * W * C)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("frac,noise", [(0.3, 0.05), (0.0, 0.1), (1.0, 0.0), (0.5, 0.0)])
def test_table_matches_loop_reference(dtype, frac, noise):
    X = np.random.default_rng(0).normal(size=(17, 6)).astype(dtype)
    got = TableAugmenter(corrupt_frac=frac, noise_std=noise)(X, np.random.default_rng(7))
    ref = table_reference(X, np.random.default_rng(7), frac, noise)
    assert got.dtype == X.dtype and got.shape == X.shape and got is not X
    np.testing.assert_allclose(got, ref, rtol=2 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("shape", [(6, 5), (5, 7, 3)])
@pytest.mark.parametrize("params", [
    dict(), dict(flip=True), dict(pad=0, flip=True), dict(pad=2, erase_prob=1.0),
    dict(pad=0, noise_std=0.0, erase_prob=0.0), dict(pad=3, flip=True, clip=False, erase_prob=0.5),
])
def test_image_matches_loop_reference(shape, params):
    X = np.random.default_rng(1).random((9, int(np.prod(shape))), dtype=np.float32)
    aug = ImageAugmenter(shape, **params)
    got = aug(X, np.random.default_rng(3))
    ref = image_reference(aug, X, np.random.default_rng(3))
    assert got.dtype == X.dtype and got.shape == X.shape
    np.testing.assert_array_equal(got, ref)
    assert not np.shares_memory(got, X)


def test_inputs_are_not_modified():
    X = np.random.default_rng(2).random((8, 36), dtype=np.float32)
    X0 = X.copy()
    ImageAugmenter((6, 6), pad=0, flip=False)(X, 0)
    TableAugmenter(corrupt_frac=0.0)(X, 0)
    np.testing.assert_array_equal(X, X0)
