"""Augmentations: two fresh random views of every batch (spec §4), drawn on the host.

Book: *Theory* (``book/theory.md``), section "Training"; spec §1 (p views) and §4.

Every augmenter is a callable ``(X_batch, rng) -> X_view``:

* ``X_batch`` : array (B, d) of NumPy or CuPy (flattened images or table rows);
* ``rng`` : a host :class:`numpy.random.Generator`.

All random numbers (offsets, masks, noise) are drawn on the host from ``rng`` and then
moved to ``X_batch``'s namespace, so a seed gives the same views on a CPU and on a GPU
(:mod:`krepes_lib.backend` policy). The arithmetic is vectorised over the batch and makes
few passes over memory: shifts and flips are one flat gather (``take``) from the batch with
out-of-image pixels pointed at an appended zero (no padded copy), the table corruption is
one flat gather of the donor entries and one masked copy, noise, clipping and erasing are
applied in place; there is no Python loop over samples. The output has X_batch's shape, dtype and
namespace.

Images (``image_shape`` = (H, W) or (H, W, C); rows of X_batch are row-major flattened)
    1. random shift: zero-pad by ``pad`` pixels, crop H×W at a random offset in
       [0, 2·pad]² (the "pad + random crop" of CIFAR training); optional horizontal flip;
    2. Gaussian noise of standard deviation ``noise_std``, then clip to [0, 1];
    3. random erasing: with probability ``erase_prob`` one rectangle whose area is a
       fraction in ``erase_scale`` of the image and aspect ratio in ``erase_ratio`` is
       set to 0.

Tables (SCARF-style corruption)
    1. a fraction ``corrupt_frac`` of the entries, chosen independently, is replaced by the
       value of the same column in another row of the batch drawn uniformly (a draw from
       the column's empirical marginal);
    2. Gaussian noise of standard deviation ``noise_std`` × the column's batch standard
       deviation.

The defaults below (:data:`IMAGE_DEFAULTS`, :data:`TABLE_DEFAULTS`) are this project's
choices — the paper does not publish its augmentations.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .backend import get_xp, host_rng
from .defaults import IMAGE_DEFAULTS, TABLE_DEFAULTS

__all__ = ["make_augmenter", "ImageAugmenter", "TableAugmenter", "identity", "auto_for_kernel",
           "IMAGE_DEFAULTS", "TABLE_DEFAULTS"]

# IMAGE_DEFAULTS, TABLE_DEFAULTS: see krepes_lib.defaults (the one place for defaults).


def identity(X_batch, rng=None):
    """The "no augmentation" view: a copy of ``X_batch``."""
    return X_batch.copy()


def _check_batch(X, d_expected=None, what="X_batch"):
    if not hasattr(X, "ndim") or X.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (B, d) array; got {getattr(X, 'shape', type(X))}.")
    if d_expected is not None and X.shape[1] != d_expected:
        raise ValueError(f"{what} has {X.shape[1]} columns but the image shape needs {d_expected}.")


class ImageAugmenter:
    """Random shift/crop (+ flip), Gaussian noise, random erasing of flattened images.

    Parameters
    ----------
    image_shape : tuple
        (H, W) or (H, W, C), the layout of each row of X_batch (row-major).
    pad, flip, noise_std, erase_prob, erase_scale, erase_ratio, clip
        See the module docstring; defaults :data:`IMAGE_DEFAULTS`. ``pad=0`` disables the
        shift, ``noise_std=0`` the noise, ``erase_prob=0`` the erasing.
    """

    def __init__(self, image_shape, **params):
        unknown = set(params) - set(IMAGE_DEFAULTS)
        if unknown:
            raise TypeError(f"ImageAugmenter: unknown parameter(s) {sorted(unknown)}; "
                            f"known: {sorted(IMAGE_DEFAULTS)}.")
        p = {**IMAGE_DEFAULTS, **params}
        shape = tuple(int(s) for s in image_shape)
        if len(shape) == 2:
            shape = shape + (1,)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape={image_shape!r} must be (H, W) or (H, W, C).")
        self.image_shape = shape
        H = shape[0]
        self.pad = max(1, round(H / 8)) if p["pad"] is None else int(p["pad"])
        self.flip = bool(p["flip"])
        self.noise_std = float(p["noise_std"])
        self.erase_prob = float(p["erase_prob"])
        self.erase_scale = tuple(map(float, p["erase_scale"]))
        self.erase_ratio = tuple(map(float, p["erase_ratio"]))
        self.clip = bool(p["clip"])
        if self.pad < 0 or self.noise_std < 0 or not 0 <= self.erase_prob <= 1:
            raise ValueError("ImageAugmenter: need pad >= 0, noise_std >= 0 and 0 <= erase_prob <= 1.")

    def __call__(self, X_batch, rng):
        _check_batch(X_batch, int(np.prod(self.image_shape)))
        rng = host_rng(rng)
        xp = get_xp(X_batch)
        H, W, C = self.image_shape
        B = X_batch.shape[0]
        dt = X_batch.dtype
        # 1. shift (pad + random crop) and flip: one gather. The padded image is never formed:
        #    a flat index into the batch picks each output pixel, out-of-image pixels are
        #    pointed at a zero appended after the batch (same result as zero padding).
        if self.pad > 0 or self.flip:
            p = self.pad
            oy = rng.integers(0, 2 * p + 1, size=B)
            ox = rng.integers(0, 2 * p + 1, size=B)
            rows = oy[:, None] + np.arange(H)[None, :] - p                   # (B, H) source rows
            cols = np.arange(W)[None, :]
            if self.flip:
                flipped = rng.random(B) < 0.5
                cols = np.where(flipped[:, None], W - 1 - cols, cols)
            cols = ox[:, None] + cols - p                                      # (B, W) source cols
            inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
            pix = (np.arange(B)[:, None, None] * (H * W) + rows[:, :, None] * W + cols[:, None, :])
            pix = np.where(inside, pix, B * H * W)                             # → the appended zero
            idx = (pix[..., None] * C + np.arange(C)).reshape(B, H * W * C) if C > 1 else pix.reshape(B, H * W)
            if C > 1:
                idx = np.where(np.repeat(inside.reshape(B, H * W), C, axis=1), idx, B * H * W * C)
            src = xp.concatenate([X_batch.reshape(-1), xp.zeros(1, dtype=dt)])
            out = xp.take(src, xp.asarray(idx))                                # (B, H·W·C), new array
        else:
            out = X_batch.copy()
        # 2. Gaussian noise, added and clipped in place
        if self.noise_std > 0:
            noise = xp.asarray(rng.standard_normal((B, H * W * C), dtype=np.float32), dtype=dt)
            noise *= dt.type(self.noise_std)
            out += noise
            if self.clip:
                xp.clip(out, 0.0, 1.0, out=out)
        # 3. random erasing: one rectangle per chosen image, as a broadcast mask applied in place
        if self.erase_prob > 0:
            chosen = rng.random(B) < self.erase_prob
            area = rng.uniform(*self.erase_scale, size=B) * H * W
            log_r = rng.uniform(np.log(self.erase_ratio[0]), np.log(self.erase_ratio[1]), size=B)
            ratio = np.exp(log_r)
            eh = np.clip(np.round(np.sqrt(area * ratio)), 1, H).astype(np.int64)
            ew = np.clip(np.round(np.sqrt(area / ratio)), 1, W).astype(np.int64)
            y0 = (rng.random(B) * (H - eh + 1)).astype(np.int64)
            x0 = (rng.random(B) * (W - ew + 1)).astype(np.int64)
            r = np.arange(H)[None, :]
            c = np.arange(W)[None, :]
            in_r = (r >= y0[:, None]) & (r < (y0 + eh)[:, None]) & chosen[:, None]   # (B, H)
            in_c = (c >= x0[:, None]) & (c < (x0 + ew)[:, None])                      # (B, W)
            keep = ~(in_r[:, :, None] & in_c[:, None, :])                             # (B, H, W)
            out3 = out.reshape(B, H * W, C)
            out3 *= xp.asarray(keep.reshape(B, H * W, 1), dtype=dt)
        return out

    def __repr__(self):
        return (f"ImageAugmenter(image_shape={self.image_shape}, pad={self.pad}, flip={self.flip}, "
                f"noise_std={self.noise_std}, erase_prob={self.erase_prob})")


class TableAugmenter:
    """SCARF-style corruption from the batch's column marginals plus Gaussian noise.

    Parameters
    ----------
    corrupt_frac : float in [0, 1], default ``TABLE_DEFAULTS["corrupt_frac"]``
        Probability that an entry is replaced by the same column of a random batch row.
    noise_std : float >= 0, default ``TABLE_DEFAULTS["noise_std"]``
        Noise standard deviation in units of each column's batch standard deviation.
    """

    def __init__(self, **params):
        unknown = set(params) - set(TABLE_DEFAULTS)
        if unknown:
            raise TypeError(f"TableAugmenter: unknown parameter(s) {sorted(unknown)}; "
                            f"known: {sorted(TABLE_DEFAULTS)}.")
        p = {**TABLE_DEFAULTS, **params}
        self.corrupt_frac = float(p["corrupt_frac"])
        self.noise_std = float(p["noise_std"])
        if not 0 <= self.corrupt_frac <= 1 or self.noise_std < 0:
            raise ValueError("TableAugmenter: need 0 <= corrupt_frac <= 1 and noise_std >= 0.")

    def __call__(self, X_batch, rng):
        _check_batch(X_batch)
        rng = host_rng(rng)
        xp = get_xp(X_batch)
        B, d = X_batch.shape
        dt = X_batch.dtype
        if self.corrupt_frac > 0:
            mask = rng.random((B, d)) < self.corrupt_frac
            donor = rng.integers(0, B, size=(B, d))                    # row to copy from
            # the same column of another row, as one flat gather: X[donor, j] = X.flat[donor·d + j]
            donor *= d
            donor += np.arange(d)
            out = xp.take(X_batch.reshape(-1), xp.asarray(donor))     # (B, d), new array
            keep = xp.asarray(~mask)
            xp.copyto(out, X_batch, where=keep)                          # uncorrupted entries
        else:
            out = X_batch.copy()
        if self.noise_std > 0:
            std = X_batch.std(axis=0, keepdims=True)
            std *= dt.type(self.noise_std)
            noise = xp.asarray(rng.standard_normal((B, d), dtype=np.float32), dtype=dt)
            noise *= std
            out += noise
        return out

    def __repr__(self):
        return f"TableAugmenter(corrupt_frac={self.corrupt_frac}, noise_std={self.noise_std})"


def make_augmenter(dataset_or_image_shape=None, **params) -> Callable:
    """The augmenter for a data set: images by ``image_shape``, tables otherwise.

    Parameters
    ----------
    dataset_or_image_shape : Dataset, tuple, "table" or None
        A :mod:`krepes_lib.data` ``Dataset`` (its ``image_shape`` decides: None means a
        table), an image shape (H, W) / (H, W, C), or ``None`` / ``"table"`` for table rows.
    **params
        Overrides of :data:`IMAGE_DEFAULTS` or :data:`TABLE_DEFAULTS`.

    Returns
    -------
    callable ``(X_batch, rng) -> X_view``

    Examples
    --------
    >>> import numpy as np
    >>> aug = make_augmenter((8, 8))
    >>> X = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    >>> aug(X, np.random.default_rng(1)).shape
    (5, 64)
    """
    target = dataset_or_image_shape
    if target is not None and not isinstance(target, (tuple, list, str)):
        target = getattr(target, "image_shape", None)
    if target is None or target == "table":
        return TableAugmenter(**params)
    if isinstance(target, str):
        raise ValueError(f"make_augmenter({target!r}): pass a Dataset, an image shape, or 'table'.")
    return ImageAugmenter(tuple(target), **params)


def auto_for_kernel(augment, kernel):
    """``augment="auto"`` made concrete for a kernel that knows its rows are images.

    A kernel told the data's image shape (``TorchNTK(image_shape=...)``, or a one-channel
    ``input_shape``) exposes it as ``kernel.data_image_shape``; then ``"auto"`` means the image
    augmentations of that shape, never the table corruption. Anything else is returned
    unchanged (``"auto"`` stays table corruption for two views, :func:`krepes_lib.train.resolve_augment`).
    """
    if isinstance(augment, str) and augment == "auto":
        shape = getattr(kernel, "data_image_shape", None)
        if shape is not None:
            return tuple(shape)
    return augment
