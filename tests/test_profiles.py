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
    (lambda n: n["quick"].update(epochs={"mlp": 30}), "exactly the architectures"),
    (lambda n: n["quick"].update(lr={"mlp": 3e-3, "cnn": 0}), "positive number"),
    (lambda n: n["ci"].pop("lr"), "exactly"),
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


def test_epochs_and_lr_per_architecture():
    ssl = pytest.importorskip("krepes_lib.neural.ssl")
    q = profiles.network_profiles()["quick"]
    mlp, cnn = profiles.resolve_arch(dict(q), "mlp"), profiles.resolve_arch(dict(q), "cnn")
    table, image = ssl.SSLConfig.for_profile("adult", "barlow_twins", "quick"), ssl.SSLConfig.for_profile("mnist", "barlow_twins", "quick")
    assert (table.epochs, table.lr) == (mlp["epochs"], mlp["lr"]) and (image.epochs, image.lr) == (cnn["epochs"], cnn["lr"])
    assert ssl.SSLConfig.for_profile("adult", "barlow_twins", "quick", epochs=2).epochs == 2  # an override wins
    with pytest.raises(ValueError, match="arch"):
        profiles.resolve_arch(dict(q), "resnet")
