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

__all__ = ["load_experiments", "network_profiles", "check_network_profiles"]

_NETWORK_FIELDS = {"n_train", "n_test", "size", "epochs", "batch_size"}


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files("krepes_lib").joinpath("experiments.yml").read_text()


def load_experiments() -> dict:
    """The parsed ``experiments.yml`` (a fresh dict on every call)."""
    import yaml

    return yaml.safe_load(_text())


def check_network_profiles(nets, profiles=None, source: str = "krepes_lib/experiments.yml") -> dict:
    """Validate the ``networks:`` section: a mapping profile -> {n_train, n_test, size, epochs,
    batch_size}, naming every profile of ``profiles`` (when given) and no other. Returns it."""
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
        for k in ("epochs", "batch_size"):
            if not (isinstance(cfg[k], int) and not isinstance(cfg[k], bool) and cfg[k] >= 1):
                raise ValueError(f"{source}: networks.{name}.{k} must be a positive integer; got {cfg[k]!r}.")
        for k in ("n_train", "n_test"):
            if cfg[k] is not None and not (isinstance(cfg[k], int) and not isinstance(cfg[k], bool) and cfg[k] >= 2):
                raise ValueError(f"{source}: networks.{name}.{k} must be an integer ≥ 2 or null (all rows); "
                                 f"got {cfg[k]!r}.")
    return nets


def network_profiles() -> MappingProxyType:
    """``{profile: {n_train, n_test, size, epochs, batch_size}}`` of the ``networks:`` section
    (read-only), checked by :func:`check_network_profiles`."""
    exp = load_experiments()
    nets = check_network_profiles(exp.get("networks"), exp.get("profiles"))
    return MappingProxyType({name: MappingProxyType(dict(cfg)) for name, cfg in nets.items()})
