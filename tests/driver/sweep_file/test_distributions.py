"""Random search space: seeded, log-uniform where asked, never a grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sweeps.driver.sweep_file.distributions import (
    DISTRIBUTIONS,
    DistributionError,
    Evidence,
    build_search_space,
    preview_trial_configs,
)

SPACE = {
    "lr": {"log_uniform": [1.0e-4, 1.0]},
    "momentum": {"uniform": [0.5, 0.99]},
    "batch_size": {"int_uniform": [16, 18]},
    "activation": {"choice": ["relu", "tanh", "elu"]},
    "weight_decay": 0.0,
}


def test_same_seed_same_configs_and_other_seed_differs():
    first = preview_trial_configs(SPACE, seed=7, num_samples=10)
    assert first == preview_trial_configs(SPACE, seed=7, num_samples=10)
    assert first != preview_trial_configs(SPACE, seed=8, num_samples=10)


def test_every_trial_gets_a_new_value_of_every_sampled_param():
    configs = preview_trial_configs(SPACE, seed=0, num_samples=20)
    assert len({config["lr"] for config in configs}) == 20  # random search, not a grid
    assert all(config["weight_decay"] == 0.0 for config in configs)  # literals stay fixed


def test_log_uniform_is_uniform_in_log_space():
    lrs = np.array(
        [config["lr"] for config in preview_trial_configs(SPACE, seed=1, num_samples=2000)]
    )
    assert lrs.min() >= 1.0e-4 and lrs.max() <= 1.0
    # log10(lr) ~ U(-4, 0): a Kolmogorov-Smirnov test accepts it...
    assert stats.kstest(np.log10(lrs), stats.uniform(loc=-4, scale=4).cdf).pvalue > 0.001
    # ...while lr itself is far from uniform on [1e-4, 1]: most draws are small.
    assert stats.kstest(lrs, stats.uniform(loc=1e-4, scale=1).cdf).pvalue < 1e-6
    assert abs(np.mean(lrs < 1e-2) - 0.5) < 0.05


def test_int_uniform_bounds_are_inclusive_and_choice_covers_values():
    configs = preview_trial_configs(SPACE, seed=2, num_samples=300)
    assert {config["batch_size"] for config in configs} == {16, 17, 18}
    assert {config["activation"] for config in configs} == {"relu", "tanh", "elu"}
    momenta = [config["momentum"] for config in configs]
    assert 0.5 <= min(momenta) and max(momenta) <= 0.99


def test_domains_are_ray_tune_domains():
    space = build_search_space(SPACE)
    assert type(space["lr"]).__name__ == "Float" and math.isclose(space["lr"].lower, 1.0e-4)
    assert space["weight_decay"] == 0.0


# One example of each kind: the registry test below covers every entry, so a new kind needs one line
# here.
EXAMPLES = {
    "log_uniform": [1.0e-4, 1.0],
    "uniform": [0.5, 0.99],
    "int_uniform": [16, 18],
    "choice": ["relu", "tanh", "elu"],
}


def test_every_registered_kind_has_an_example():
    assert set(EXAMPLES) == set(DISTRIBUTIONS)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_every_kind_checks_samples_previews_represents_and_narrows(name):
    import jsonschema

    kind, args = DISTRIBUTIONS[name], EXAMPLES[name]
    kind.check(args)
    jsonschema.validate(args, kind.json_schema())
    draws = [kind.draw(args, np.random.default_rng(seed)) for seed in range(50)]
    middle = kind.representative(args)
    if name == "choice":
        assert set(draws) <= set(args) and middle == args[0]
    else:
        assert all(args[0] <= value <= args[1] for value in [*draws, middle])
    assert type(kind.tune_domain(args)).__module__.startswith("ray.tune.search.sample")
    for matters in (True, False):
        narrowed = kind.narrow(
            args, Evidence(ranked=draws, top=3, matters=matters), name="x", valid=lambda value: True
        )
        kind.check(narrowed.args)  # a narrowed distribution is itself valid
        assert narrowed.why
    with pytest.raises(DistributionError):
        kind.check("not arguments")


def test_a_kind_refuses_a_parameter_it_cannot_sample():
    assert DISTRIBUTIONS["log_uniform"].refusal_for("name", "activation") is not None
    assert DISTRIBUTIONS["uniform"].refusal_for("int", "batch_size") is not None
    assert DISTRIBUTIONS["int_uniform"].refusal_for("int", "batch_size") is None
    assert DISTRIBUTIONS["choice"].refusal_for("bool", "batch_norm") is None


def test_a_choice_drops_a_value_only_when_enough_trials_all_ranked_low():
    choice = DISTRIBUTIONS["choice"]
    args = ["relu", "tanh", "sigmoid"]
    # Best first: sigmoid's three trials are all in the bottom half; relu's one bad trial is no
    # evidence.
    ranked = ["tanh", "tanh", "relu", "tanh", "sigmoid", "relu", "sigmoid", "sigmoid"]
    narrowed = choice.narrow(
        args,
        Evidence(ranked=ranked, top=3, matters=True, rung=4),
        name="activation",
        valid=lambda value: True,
    )
    assert narrowed.args == ["relu", "tanh"]
    assert "sigmoid" in narrowed.why and "epoch 4" in narrowed.why
    # Two trials of a value, both last: not enough to drop it.
    kept = choice.narrow(
        args,
        Evidence(ranked=["tanh", "relu", "tanh", "sigmoid", "sigmoid"], top=3, matters=True),
        name="a",
        valid=lambda v: True,
    )
    assert kept.args == args
    # true is not 1: booleans are told apart from numbers.
    flags = choice.narrow(
        [True, False],
        Evidence(ranked=[True, True, 1, False, False, False], top=2, matters=True),
        name="b",
        valid=lambda v: True,
    )
    assert flags.args == [True]


def test_a_range_narrows_where_the_parameter_matters_and_stays_where_it_does_not():
    log_uniform = DISTRIBUTIONS["log_uniform"]
    evidence = dict(ranked=[3e-2, 5e-2, 1e-2, 1e-4, 0.5], top=3)
    narrowed = log_uniform.narrow(
        [1e-4, 1.0], Evidence(**evidence, matters=True), name="lr", valid=lambda value: True
    )
    assert 1e-4 < narrowed.args[0] <= 1e-2 and 5e-2 <= narrowed.args[1] < 1.0
    kept = log_uniform.narrow(
        [1e-4, 1.0], Evidence(**evidence, matters=False), name="lr", valid=lambda value: True
    )
    assert kept.args == [1e-4, 1.0] and "no clear effect" in kept.why
