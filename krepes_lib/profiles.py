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

__all__ = ["load_experiments", "network_profiles"]

_NETWORK_FIELDS = {"n_train", "n_test", "size", "epochs", "batch_size"}


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files("krepes_lib").joinpath("experiments.yml").read_text()


def load_experiments() -> dict:
    """The parsed ``experiments.yml`` (a fresh dict on every call)."""
    import yaml

    return yaml.safe_load(_text())


def network_profiles() -> MappingProxyType:
    """``{profile: {n_train, n_test, size, epochs, batch_size}}`` of the ``networks:`` section
    (read-only); a profile missing a field or naming an unknown one is refused."""
    nets = load_experiments().get("networks")
    if not isinstance(nets, dict) or not nets:
        raise ValueError("krepes_lib/experiments.yml has no 'networks:' section (the SSL networks' "
                         "training sizes per profile).")
    out = {}
    for name, cfg in nets.items():
        cfg = dict(cfg or {})
        if set(cfg) != _NETWORK_FIELDS:
            raise ValueError(f"experiments.yml networks.{name}: needs exactly {sorted(_NETWORK_FIELDS)}, "
                             f"got {sorted(cfg)}.")
        out[name] = MappingProxyType(cfg)
    return MappingProxyType(out)
