"""One process-wide store of per-row eNTK features: each row's features computed once.

Book: *The empirical NTK of a network* (``book/entk.md``), section "Features computed once".

A feature-map kernel k(x, x') = φ(x)·φ(x') (:class:`krepes_lib.neural.TorchNTK`) spends
almost all of its time on φ: r reverse passes per row (exact, projected) or S forward-mode
passes (sketch). Landmark selection (kernel-space k-means++ reads K(X, x_j) once per landmark),
the Nyström basis (K_mm), the audit (K(views, landmarks)), embeddings (K(X, landmarks)) and
influence (K(X_t, landmarks)) all read rows they have seen before. This store keeps every
row's features under a key (kernel token, digest of the row's bits), so each row is computed
once per process while the budget allows:

* **memory**: a least-recently-used map of rows, bounded by one budget shared by every kernel
  of the process (``Options.feature_cache_bytes``, default
  :data:`krepes_lib.defaults.FEATURE_CACHE_BYTES`; :func:`set_budget` changes it). Three
  kernels kept alive share it — they do not each keep their own gigabyte (fault trial #43).
* **disk**: rows evicted from memory are spilled, a block at a time, to ``.npy`` shards in a
  private temporary folder (under ``$KREPES_CACHE/ntk-features`` when set, else the system's
  temporary folder), written to a temporary name and renamed, each with its SHA-256; a shard
  whose bytes no longer match is dropped and its rows recomputed, never read. The folder is
  removed when the process exits. Disk use is bounded too (``spill_bytes``), and a row is
  spilled only when recomputing it costs more than writing and reading it back (the rows of a
  small network are recomputed instead).

Rows of a call that are already stored are gathered; only the missing ones are computed (in
chunks, with a tqdm bar when there are many). The features of rows in use by the current
call are never evicted by it.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict

import numpy as np

from ..defaults import FEATURE_CACHE_BYTES, FEATURE_SPILL_BYTES

#: Bytes per second assumed for writing / reading spilled rows (conservative for a local disk).
DISK_BYTES_PER_S = 200e6

__all__ = ["FeatureStore", "feature_store", "set_budget", "set_feature_budget", "row_keys"]


class FeatureStore:
    """Per-row features of any number of kernels under one memory and one disk budget.

    Parameters
    ----------
    budget : int
        Bytes of features kept in memory (all kernels together).
    spill_bytes : int
        Bytes of features spilled to disk at most (0: no spill; evicted rows are dropped).
    spill_dir : str, optional
        Parent folder of the private spill folder.
    """

    def __init__(self, budget: int = FEATURE_CACHE_BYTES, spill_bytes: int = FEATURE_SPILL_BYTES,
                 spill_dir: str | None = None):
        self._lock = threading.RLock()
        self._mem: OrderedDict = OrderedDict()  # key -> (row, nbytes, generation, s to compute)
        self._disk: dict = {}                   # key -> (shard id, row in shard)
        self._shards: dict = {}                 # shard id -> [path, sha256, nbytes, live rows]
        self.used = 0
        self.spilled = 0
        self.gen = 0
        self.spill_dir = spill_dir
        self._folder = None
        self._next_shard = 0
        self.stats = {"hits": 0, "disk_hits": 0, "computed": 0, "spilled": 0, "dropped": 0,
                      "corrupt": 0}
        self.set_budget(budget, spill_bytes)

    # -- configuration ------------------------------------------------------------------
    def set_budget(self, budget: int | None = None, spill_bytes: int | None = None):
        """Change the memory (and disk) budget; shrinking evicts at once."""
        with self._lock:
            if budget is not None:
                if isinstance(budget, bool) or int(budget) != budget or budget < 0:
                    raise ValueError(f"feature cache budget={budget!r} must be a number of bytes >= 0 "
                                     "(0 keeps no features between calls).")
                self.budget = int(budget)
            if spill_bytes is not None:
                if isinstance(spill_bytes, bool) or int(spill_bytes) != spill_bytes or spill_bytes < 0:
                    raise ValueError(f"spill_bytes={spill_bytes!r} must be a number of bytes >= 0.")
                self.spill_bytes = int(spill_bytes)
            self._evict(0)

    def clear(self, token=None, owner=None):
        """Forget every row (of one ``token``, of every token ``(owner, ...)``, or all)."""
        def match(k):
            if token is not None:
                return k[0] == token
            if owner is not None:
                return isinstance(k[0], tuple) and k[0][0] == owner
            return True

        with self._lock:
            for key in [k for k in self._mem if match(k)]:
                self.used -= self._mem.pop(key)[1]
            for key in [k for k in self._disk if match(k)]:
                self._drop_disk(key)

    def __len__(self):
        return len(self._mem) + len(self._disk)

    def __repr__(self):
        return (f"FeatureStore(rows in memory={len(self._mem)}, {self.used / 2**20:.1f} of "
                f"{self.budget / 2**20:.0f} MiB; on disk={len(self._disk)}, "
                f"{self.spilled / 2**20:.1f} of {self.spill_bytes / 2**20:.0f} MiB)")

    # -- the one entry point ------------------------------------------------------------
    def rows(self, token: str, keys: list, compute, chunk: int, progress: str | None = None):
        """Features of the rows with ``keys`` (one torch tensor (n, w)), computing only the
        missing ones with ``compute(row_indices) -> (len, w)`` in chunks of ``chunk`` rows.

        ``progress``: a tqdm description, shown when more than one chunk is computed.
        """
        import torch

        with self._lock:
            self.gen += 1
            gen = self.gen
            out = [None] * len(keys)
            missing = []
            for i, k in enumerate(keys):
                key = (token, k)
                hit = self._mem.get(key)
                if hit is not None:
                    self._mem.move_to_end(key)
                    self._mem[key] = (hit[0], hit[1], gen, hit[3])
                    out[i] = hit[0]
                    self.stats["hits"] += 1
                elif key in self._disk:
                    row = self._read_disk(key)
                    if row is not None:
                        out[i] = row
                        self.stats["disk_hits"] += 1
                        if self._put(key, row, gen):  # back in memory when it fits, else stays on disk
                            self._drop_disk(key)
                        continue
                    missing.append(i)
                else:
                    missing.append(i)
        # compute the missing rows (unique keys only: a row repeated in X is computed once)
        first = {}
        todo = []
        for i in missing:
            if keys[i] not in first:
                first[keys[i]] = i
                todo.append(i)
        if todo:
            starts = range(0, len(todo), chunk)
            bar = None
            if progress and len(starts) > 1:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(todo), desc=progress, unit="row", leave=False)
            for s in starts:
                idx = todo[s:s + chunk]
                t0 = time.perf_counter()
                F = compute(idx)
                seconds_per_row = (time.perf_counter() - t0) / max(1, len(idx))
                with self._lock:
                    over = []
                    for j, i in enumerate(idx):
                        row = F[j]
                        out[i] = row
                        self.stats["computed"] += 1
                        # a view into the chunk F (no copy): F lives while any of its rows is held
                        if not self._put((token, keys[i]), row, gen, seconds_per_row):
                            over.append(((token, keys[i]), row))
                    if over and self._worth_spilling(over[0][1], seconds_per_row):
                        # memory is full of rows in use: the rest goes to disk, one shard
                        self._spill([k for k, _ in over], [r for _, r in over],
                                    sum(r.numel() * r.element_size() for _, r in over))
                    elif over:
                        self.stats["dropped"] += len(over)
                if bar is not None:
                    bar.update(len(idx))
            if bar is not None:
                bar.close()
            for i in missing:
                if out[i] is None:
                    out[i] = out[first[keys[i]]]
        return torch.stack(out) if out else None

    # -- memory ---------------------------------------------------------------------------
    def _worth_spilling(self, row, seconds_per_row) -> bool:
        """Spill a row to disk only when recomputing it costs more than twice writing and
        reading it back (at ``DISK_BYTES_PER_S``): a small network's rows are recomputed."""
        if seconds_per_row is None:
            return True
        nbytes = row.numel() * row.element_size()
        return seconds_per_row > 4.0 * nbytes / DISK_BYTES_PER_S

    def _put(self, key, row, gen, seconds_per_row=None) -> bool:
        """Keep ``row`` in memory if the budget allows (evicting older rows); False if not."""
        nbytes = row.numel() * row.element_size()
        if nbytes > self.budget:
            return False
        if key in self._mem:
            self.used -= self._mem.pop(key)[1]
        self._evict(nbytes, protect=gen)
        if self.used + nbytes > self.budget:
            return False  # everything held is in use by this call
        self._mem[key] = (row.detach(), nbytes, gen, seconds_per_row)
        self.used += nbytes
        return True

    def _evict(self, need, protect=None):
        """Make room for ``need`` bytes: spill least recently used rows (not of generation
        ``protect``) to disk in blocks, or drop them when spilling is off or full."""
        victims = []
        freed = 0
        for key, (row, nbytes, g, _) in self._mem.items():
            if self.used - freed + need <= self.budget:
                break
            if protect is not None and g >= protect:
                break  # LRU order: everything after is at least as recent
            victims.append(key)
            freed += nbytes
        if not victims:
            return
        rows = [self._mem.pop(k) for k in victims]
        self.used -= freed
        keep = [(k, r) for k, r in zip(victims, rows) if self._worth_spilling(r[0], r[3])]
        self.stats["dropped"] += len(victims) - len(keep)
        if keep:
            self._spill([k for k, _ in keep], [r[0] for _, r in keep], sum(r[1] for _, r in keep))

    # -- disk -----------------------------------------------------------------------------
    def _folder_path(self):
        if self._folder is None:
            parent = self.spill_dir or (os.path.join(os.environ["KREPES_CACHE"], "ntk-features")
                                        if os.environ.get("KREPES_CACHE") else None)
            if parent:
                os.makedirs(parent, exist_ok=True)
            self._folder = tempfile.mkdtemp(prefix=f"krepes-features-{os.getpid()}-", dir=parent)
            atexit.register(shutil.rmtree, self._folder, True)
        return self._folder

    def _spill(self, keys, rows, nbytes):
        if self.spill_bytes <= 0 or self.spilled + nbytes > self.spill_bytes:
            self.stats["dropped"] += len(keys)
            return
        by_shape = {}
        for k, r in zip(keys, rows):
            by_shape.setdefault((tuple(r.shape), str(r.dtype)), []).append((k, r))
        for items in by_shape.values():
            import torch

            block = torch.stack([r for _, r in items]).cpu().numpy()
            try:
                folder = self._folder_path()
                sid = self._next_shard
                self._next_shard += 1
                path = os.path.join(folder, f"shard-{sid:06d}.npy")
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".shard-", suffix=".npy.tmp")
                with os.fdopen(fd, "wb") as f:
                    np.save(f, block)
                os.replace(tmp, path)  # never half-written under its final name
            except OSError:
                self.stats["dropped"] += len(items)
                continue
            digest = hashlib.sha256(np.ascontiguousarray(block).tobytes()).hexdigest()
            self._shards[sid] = [path, digest, block.nbytes, len(items), items[0][1].device]
            for j, (k, _) in enumerate(items):
                self._disk[k] = (sid, j)
            self.spilled += block.nbytes
            self.stats["spilled"] += len(items)

    def _read_disk(self, key):
        import torch

        sid, j = self._disk[key]
        path, digest, _, _, device = self._shards[sid]
        try:
            block = np.load(path, mmap_mode=None, allow_pickle=False)
            ok = hashlib.sha256(np.ascontiguousarray(block).tobytes()).hexdigest() == digest
        except (OSError, ValueError):
            ok = False
        if not ok:  # changed or lost on disk: drop the whole shard, recompute its rows
            self.stats["corrupt"] += 1
            for k in [k for k, v in self._disk.items() if v[0] == sid]:
                self._drop_disk(k)
            return None
        return torch.from_numpy(block[j].copy()).to(device)

    def _drop_disk(self, key):
        sid, _ = self._disk.pop(key)
        shard = self._shards.get(sid)
        if shard is None:
            return
        shard[3] -= 1
        if shard[3] <= 0:
            self.spilled -= shard[2]
            del self._shards[sid]
            try:
                os.unlink(shard[0])
            except OSError:
                pass


_STORE = None


def feature_store() -> FeatureStore:
    """The process-wide store every :class:`~krepes_lib.neural.TorchNTK` shares."""
    global _STORE
    if _STORE is None:
        _STORE = FeatureStore()
    return _STORE


def set_budget(budget: int | None = None, spill_bytes: int | None = None) -> FeatureStore:
    """Set the process-wide feature budget in bytes (``Options.feature_cache_bytes``)."""
    store = feature_store()
    store.set_budget(budget, spill_bytes)
    return store


set_feature_budget = set_budget

_HASH_W = {}


def row_keys(x) -> list:
    """One key per row of the tensor x (b, d): its exact bits.

    On the host: BLAKE2b of each row's bytes. On a GPU the rows stay there: their bits, read
    as integers, are multiplied by two fixed random 64-bit vectors and summed with
    wrap-around (a linear hash mod 2⁶⁴), and only those 2 integers per row cross to the host.
    """
    import torch

    x = x.detach().contiguous()
    if not x.is_cuda:
        a = x.cpu().numpy()
        a = a.reshape(a.shape[0], -1).view(np.uint8)
        return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in a]
    bits = x.reshape(x.shape[0], -1)
    bits = bits.view(torch.int32 if x.element_size() == 4 else torch.int64).to(torch.int64)
    key = (bits.shape[1], str(x.device))
    if key not in _HASH_W:
        w = np.random.default_rng(0x6E74).integers(-2**62, 2**62, size=(bits.shape[1], 2), dtype=np.int64) | 1
        _HASH_W[key] = torch.from_numpy(w).to(x.device)
    h = (bits.unsqueeze(-1) * _HASH_W[key]).sum(dim=1).cpu().numpy()
    return [r.tobytes() for r in h]
