"""Profiles as ``krepes_lib/experiments.yml`` defines them — the one place profiles live.

Book: *Reproduction report* (profiles ``ci`` / ``quick`` / ``paper``).

The file holds the notebook × profile parameters that ``krepes reproduce`` passes to papermill
(read by the CLI) and, under ``networks:``, the training sizes of the SSL networks per profile
that :class:`krepes_lib.neural.ssl.SSLConfig.for_profile` reads (:func:`network_profiles`).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from types import MappingProxyType

__all__ = ["load_experiments", "network_profiles", "check_network_profiles", "resolve_arch", "PER_ARCH", "ARCHS"]

_NETWORK_FIELDS = {"n_train", "n_test", "size", "epochs", "batch_size", "lr"}
#: Fields that may differ by architecture: a number, or a mapping {mlp: ..., cnn: ...} (the MLP
#: of the tables trains in seconds, the CNN of the images in tens of seconds).
PER_ARCH = {"epochs", "lr"}
ARCHS = ("mlp", "cnn")


def _per_arch(cfg: dict, name: str, k: str, ok, what: str, source: str) -> None:
    v = cfg[k]
    if isinstance(v, dict) and k in PER_ARCH:
        if set(v) != set(ARCHS):
            raise ValueError(f"{source}: networks.{name}.{k} as a mapping needs exactly the architectures "
                             f"{list(ARCHS)}; got {sorted(v)}.")
        vals = list(v.values())
    else:
        vals = [v]
    if not all(ok(x) for x in vals):
        raise ValueError(f"{source}: networks.{name}.{k} must be {what}"
                         + (f" (or a mapping {{mlp: ..., cnn: ...}} of them)" if k in PER_ARCH else "")
                         + f"; got {v!r}.")


def resolve_arch(profile: dict, arch: str) -> dict:
    """A network profile with its per-architecture fields (:data:`PER_ARCH`) resolved for
    ``arch`` ("mlp" or "cnn")."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}; use one of {ARCHS}.")
    return {k: (v[arch] if isinstance(v, dict) and k in PER_ARCH else v) for k, v in profile.items()}


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files("krepes_lib").joinpath("experiments.yml").read_text()


def load_experiments() -> dict:
    """The parsed ``experiments.yml`` (a fresh dict on every call)."""
    import yaml

    return yaml.safe_load(_text())


def check_network_profiles(nets, profiles=None, source: str = "krepes_lib/experiments.yml") -> dict:
    """Validate the ``networks:`` section: a mapping profile -> {n_train, n_test, size, epochs,
    batch_size, lr}, naming every profile of ``profiles`` (when given) and no other; ``epochs``
    and ``lr`` may be a mapping {mlp: ..., cnn: ...} (:data:`PER_ARCH`). Returns it."""
    if not isinstance(nets, dict) or not nets:
        raise ValueError(f"{source}: 'networks' must map each profile to the SSL networks' training sizes "
                         f"{sorted(_NETWORK_FIELDS)}.")
    if profiles is not None and set(nets) != set(profiles):
        raise ValueError(f"{source}: 'networks' must name every profile {sorted(profiles)} and no other; "
                         f"found {sorted(nets)}.")
    for name, cfg in nets.items():
        if not isinstance(cfg, dict) or set(cfg) != _NETWORK_FIELDS:
            got = sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__
            raise ValueError(f"{source}: networks.{name} needs exactly {sorted(_NETWORK_FIELDS)}, got {got}.")
        posint = (lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 1)
        for k in ("epochs", "batch_size"):
            _per_arch(cfg, name, k, posint, "a positive integer", source)
        _per_arch(cfg, name, "lr", lambda x: isinstance(x, float) and x > 0, "a positive number (write 1.0e-3)", source)
        for k in ("n_train", "n_test"):
            if cfg[k] is not None and not (isinstance(cfg[k], int) and not isinstance(cfg[k], bool) and cfg[k] >= 2):
                raise ValueError(f"{source}: networks.{name}.{k} must be an integer ≥ 2 or null (all rows); "
                                 f"got {cfg[k]!r}.")
    return nets


def network_profiles() -> MappingProxyType:
    """``{profile: {n_train, n_test, size, epochs, batch_size, lr}}`` of the ``networks:``
    section (read-only; ``epochs`` / ``lr`` possibly per architecture, :func:`resolve_arch`),
    checked by :func:`check_network_profiles`."""
    exp = load_experiments()
    nets = check_network_profiles(exp.get("networks"), exp.get("profiles"))
    return MappingProxyType({name: MappingProxyType(dict(cfg)) for name, cfg in nets.items()})
