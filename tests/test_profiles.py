"""Network profiles live in experiments.yml (networks:) and are checked like the rest of the file."""
import copy

import pytest

from krepes_lib import profiles
from krepes_lib.cli import ParameterError, load_experiments, validate_experiments


def test_network_profiles_come_from_experiments_yml():
    exp = load_experiments()
    nets = profiles.network_profiles()
    assert set(nets) == set(exp["profiles"]) == set(exp["networks"])
    assert dict(nets["ci"]) == exp["networks"]["ci"] and nets["quick"]["size"] == "quick"
    with pytest.raises(TypeError):
        nets["ci"]["epochs"] = 3  # read-only


@pytest.mark.parametrize("edit, match", [
    (lambda n: n.pop("paper"), "every profile"),
    (lambda n: n["ci"].pop("epochs"), "exactly"),
    (lambda n: n["ci"].update(epochs="1"), "positive integer"),
    (lambda n: n["quick"].update(n_train=1), "integer ≥ 2 or null"),
])
def test_a_bad_networks_section_is_refused_with_its_fix(edit, match):
    exp = copy.deepcopy(load_experiments())
    edit(exp["networks"])
    with pytest.raises(ParameterError, match=match):
        validate_experiments(exp)


def test_ssl_reads_the_profiles():
    ssl = pytest.importorskip("krepes_lib.neural.ssl")
    cfg = ssl.SSLConfig.for_profile("adult", "simclr", "ci")
    assert (cfg.n_train, cfg.epochs, cfg.size) == (256, 1, "tiny") and ssl.PROFILES["ci"]["batch_size"] == 64
