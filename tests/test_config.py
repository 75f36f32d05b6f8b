"""RunConfig: every bad input is refused before any work, with one message format naming the
parameter, the allowed range and the value given; to_dict / from_dict round trip."""
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroenergy.config import RunConfig
from neuroenergy.errors import ConfigError, NeuroenergyError
from neuroenergy.rules import Backprop, Combined, Path, TopFraction, make_rule


_MESSAGE = re.compile(
    r"^The '(?P<name>[^']+)' parameter of (?P<owner>\w+) must be (?P<kind>an int|a float) "
    r"in the range (?P<left>[\[(])(?P<lo>[^,]+), (?P<hi>[^\])]+)(?P<right>[\])])\. "
    r"Got (?P<got>.+) instead\.$")


def check_message(message, name, owner, kind, rng, value):
    """``message`` has the one format, for this parameter, range and value. The bounds are
    compared as numbers (to 6 digits: the exact printing of int bounds is checked apart)."""
    m = _MESSAGE.match(message)
    assert m, f"message not in the one format: {message!r}"
    assert (m["name"], m["owner"], m["kind"]) == (name, owner, kind)
    assert m["left"] + m["right"] == rng[0] + rng[-1]
    lo, hi = (v.strip() for v in rng[1:-1].split(","))
    for shown, expected in ((m["lo"], lo), (m["hi"], hi)):
        assert float(shown) == pytest.approx(float(expected), rel=1e-5), message
    assert m["got"] == repr(value)


def raises_message(call, name, owner, kind, rng, value):
    with pytest.raises(ConfigError) as info:
        call()
    check_message(str(info.value), name, owner, kind, rng, value)


def test_documented_message_exactly():
    with pytest.raises(ConfigError) as info:
        TopFraction(p=1.5)
    assert str(info.value) == ("The 'p' parameter of TopFraction must be a float in the range "
                               "(0, 1]. Got 1.5 instead.")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, NeuroenergyError)


@pytest.mark.parametrize("kwargs, name, kind, rng, value", [
    (dict(lr=-0.01), "lr", "a float", "(0, 10]", -0.01),
    (dict(lr=0.0), "lr", "a float", "(0, 10]", 0.0),
    (dict(lr=float("nan")), "lr", "a float", "(0, 10]", float("nan")),
    (dict(lr=float("inf")), "lr", "a float", "(0, 10]", float("inf")),
    (dict(lr_out=-1.0), "lr_out", "a float", "(0, 10]", -1.0),
    (dict(hidden=1), "hidden", "an int", "[2, 1000000]", 1),
    (dict(hidden=100.5), "hidden", "an int", "[2, 1000000]", 100.5),
    (dict(hidden="100"), "hidden", "an int", "[2, 1000000]", "100"),
    (dict(hidden=True), "hidden", "an int", "[2, 1000000]", True),
    (dict(seed=-1), "seed", "an int", "[0, 9223372036854775807]", -1),
    (dict(seed=False), "seed", "an int", "[0, 9223372036854775807]", False),
    (dict(eval_every=True), "eval_every", "an int", "[1, 10000000]", True),
    (dict(eval_every=0), "eval_every", "an int", "[1, 10000000]", 0),
    (dict(max_epochs=0), "max_epochs", "a float", "(0, 1000]", 0),
    (dict(target_accuracy=1.5), "target_accuracy", "a float", "(0, 1]", 1.5),
    (dict(alpha=2.5), "alpha", "a float", "[0, 2]", 2.5),
    (dict(alpha=True), "alpha", "a float", "[0, 2]", True),
    (dict(init_std=-0.1), "init_std", "a float", "[0, 10]", -0.1),
    (dict(leak=1.5), "leak", "a float", "[0, 1]", 1.5),
    (dict(noise_std=-1e-3), "noise_std", "a float", "[0, 1]", -1e-3),
    (dict(lr=True), "lr", "a float", "(0, 10]", True),
    (dict(lr="0.01"), "lr", "a float", "(0, 10]", "0.01"),
])
def test_bad_numbers(kwargs, name, kind, rng, value):
    raises_message(lambda: RunConfig(**kwargs), name, "RunConfig", kind, rng, value)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(hidden=1), "The 'hidden' parameter of RunConfig must be an int in the range "
                     "[2, 1000000]. Got 1 instead."),
    (dict(seed=-1), "The 'seed' parameter of RunConfig must be an int in the range "
                    "[0, 9223372036854775807]. Got -1 instead."),
])
def test_int_bounds_print_exactly(kwargs, expected):
    with pytest.raises(ConfigError) as info:
        RunConfig(**kwargs)
    assert str(info.value) == expected


@pytest.mark.parametrize("kwargs, name, options", [
    (dict(activation="tanh"), "activation", "'leaky_relu', 'relu', 'sigmoid'"),
    (dict(loss="hinge"), "loss", "'mse', 'softmax_ce'"),
    (dict(hardware_mode="magic"), "hardware_mode", "'accounting', 'in-the-loop'"),
])
def test_bad_choices(kwargs, name, options):
    value = next(iter(kwargs.values()))
    msg = (f"The '{name}' parameter of RunConfig must be one of {options}. "
           f"Got {value!r} instead.")
    with pytest.raises(ConfigError) as info:
        RunConfig(**kwargs)
    assert str(info.value) == msg


def test_other_bad_inputs():
    with pytest.raises(ConfigError, match=r"'rule' parameter of RunConfig must be a Rule"):
        RunConfig(rule="backprop")
    with pytest.raises(ConfigError, match=r"'zero_mean' parameter of RunConfig must be a bool"):
        RunConfig(zero_mean=1)
    with pytest.raises(ConfigError, match=r"'dataset' parameter"):
        RunConfig(dataset="")
    with pytest.raises(ConfigError, match=r"in-the-loop.*needs at least one hardware preset"):
        RunConfig(hardware_mode="in-the-loop")
    with pytest.raises(ConfigError, match=r"'hardware' parameter.*'no-such-device'"):
        RunConfig(hardware=("no-such-device",))
    with pytest.raises(ConfigError, match=r"'hardware' parameter of RunConfig must be a list "
                                          r"of preset names.*Got 3 instead"):
        RunConfig(hardware=3)
    assert RunConfig(hardware=None).hardware == ()  # None: no pricing


@pytest.mark.parametrize("rule, hidden, k_shown", [
    (Path(k=100), 100, 100), (Path(k=50), 50, 50), (Combined(k=8, p=0.1), 5, 8)])
def test_k_larger_than_hidden_minus_one(rule, hidden, k_shown):
    with pytest.raises(ConfigError) as info:
        RunConfig(rule=rule, hidden=hidden)
    msg = str(info.value)
    owner = type(rule).__name__
    assert msg.startswith(f"The 'k' parameter of {owner} must be an int in the range "
                          f"[1, {hidden - 1}]")
    assert msg.endswith(f"Got {k_shown} instead.")


def test_k_equal_to_hidden_minus_one_is_every_unit():
    RunConfig(rule=Path(k=99), hidden=100)


def test_unknown_rule():
    with pytest.raises(ConfigError) as info:
        make_rule("hebbian")
    msg = str(info.value)
    assert msg.startswith("The 'rule' parameter must be one of 'backprop', 'top-fraction', "
                          "'path', 'combined'")
    assert msg.endswith(". Got 'hebbian' instead.")
    with pytest.raises(ConfigError, match="'hebbian'"):
        RunConfig.from_dict({"rule": {"name": "hebbian"}})


def test_unknown_field_in_from_dict():
    d = RunConfig().to_dict()
    d["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"unknown configuration field\(s\) learning_rate"):
        RunConfig.from_dict(d)
    d = RunConfig(rule=Path(k=5)).to_dict()
    d["rule"]["p"] = 0.1  # a parameter the rule does not take
    with pytest.raises(ConfigError, match=r"'path' takes the parameters .* got p, "):
        RunConfig.from_dict(d)


def test_values_are_normalised():
    c = RunConfig(hidden=100.0, lr=1, max_epochs=np.float64(2), seed=np.int64(4),
                  hardware="rram-ideal, pcm")
    assert type(c.hidden) is int and c.hidden == 100
    assert type(c.lr) is float and c.lr == 1.0
    assert type(c.max_epochs) is float and type(c.seed) is int
    assert c.hardware == ("rram-ideal", "pcm")
    assert c.lr_output == 1.0 and RunConfig(lr_out=0.5).lr_output == 0.5


CONFIGS = [
    RunConfig(),
    RunConfig(rule=TopFraction(p=0.01), hidden=200, seed=7, lr=0.02, lr_out=0.005, alpha=0.5),
    RunConfig(rule=TopFraction(p=0.3, p_out=0.9), activation="sigmoid", loss="softmax_ce"),
    RunConfig(rule=Path(k=50), zero_mean=False, noise_std=0.0, data_seed=3),
    RunConfig(rule=Path(k=None, k_fraction=0.25, selection="first"), hidden=40),
    RunConfig(rule=Combined(k=20, p=0.2), max_epochs=1.5, eval_every=500, target_accuracy=0.9),
    RunConfig(rule=Combined(k=None, k_fraction=0.5, p=0.1, p_out=0.4), dataset="/tmp/idx"),
    RunConfig(hardware=("rram-ideal",), hardware_mode="in-the-loop"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_to_dict_from_dict_round_trip(config):
    d = config.to_dict()
    text = json.dumps(d)  # JSON-able
    again = RunConfig.from_dict(json.loads(text))
    assert again == config
    assert again.to_dict() == d
    assert type(again.rule) is type(config.rule)


def test_from_dict_shorthands():
    assert RunConfig.from_dict({}) == RunConfig()
    assert RunConfig.from_dict({"rule": "backprop", "hidden": 50}) == RunConfig(hidden=50)
    assert RunConfig.from_dict({"rule": {"name": "path", "k_fraction": 0.1}}).rule == \
        Path(k=None, k_fraction=0.1)


def test_replace_revalidates():
    c = RunConfig(rule=Path(k=50))
    assert c.replace(seed=5).seed == 5 and c.replace(seed=5).rule == c.rule
    with pytest.raises(ConfigError, match="'k' parameter of Path"):
        c.replace(hidden=20)


def test_config_is_frozen():
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().lr = 1.0


# ----------------------------------------------------------------------------- properties

@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5),
                 st.booleans()))
def test_p_validator_property(p):
    """TopFraction accepts exactly the real numbers in (0, 1] (not bools) and keeps them."""
    valid = (not isinstance(p, bool)) and math.isfinite(p) and 0 < p <= 1
    if valid:
        rule = TopFraction(p=p)
        assert rule.p == float(p) and type(rule.p) is float
        assert rule.fractions() == (float(p), min(78.4 * p, 1.0))
    else:
        raises_message(lambda: TopFraction(p=p), "p", "TopFraction", "a float", "(0, 1]", p)


@settings(max_examples=200, deadline=None)
@given(hidden=st.integers(-3, 400), k=st.integers(-3, 420))
def test_path_k_validator_property(hidden, k):
    """RunConfig(rule=Path(k), hidden) is accepted iff 2 <= hidden and 1 <= k <= hidden - 1."""
    valid = hidden >= 2 and 1 <= k <= hidden - 1
    if valid:
        config = RunConfig(rule=Path(k=k), hidden=hidden)
        units = config.rule.plastic_units(hidden, np.random.default_rng(0))
        assert len(units) == k + 1
    else:
        with pytest.raises(ConfigError, match=r"'(k|hidden)' parameter of (Path|RunConfig)"):
            RunConfig(rule=Path(k=k), hidden=hidden)


@settings(max_examples=200, deadline=None)
@given(lr=st.floats(allow_nan=True), hidden=st.integers(-2, 2_000_000))
def test_number_validator_property(lr, hidden):
    lr_ok = math.isfinite(lr) and 0 < lr <= 10
    hidden_ok = 2 <= hidden <= 1_000_000
    if lr_ok and hidden_ok:
        c = RunConfig(lr=lr, hidden=hidden)
        assert (c.lr, c.hidden) == (lr, hidden)
    else:
        with pytest.raises(ConfigError) as info:
            RunConfig(lr=lr, hidden=hidden)
        name = "hidden" if not hidden_ok else "lr"
        assert str(info.value).startswith(f"The '{name}' parameter of RunConfig must be ")


_rules = st.one_of(
    st.just(Backprop()),
    st.builds(TopFraction, p=st.floats(1e-4, 1.0),
              p_out=st.one_of(st.none(), st.floats(1e-4, 1.0))),
    st.builds(Path, k=st.integers(1, 9), selection=st.sampled_from(["random", "first"])),
    st.builds(Path, k=st.none(), k_fraction=st.floats(1e-3, 1.0)),
    st.builds(Combined, k=st.integers(1, 9), p=st.floats(1e-4, 1.0),
              p_out=st.one_of(st.none(), st.floats(1e-4, 1.0))),
)


@settings(max_examples=150, deadline=None)
@given(rule=_rules, hidden=st.integers(10, 500), seed=st.integers(0, 2**63 - 1),
       lr=st.floats(1e-6, 10.0), alpha=st.one_of(st.none(), st.floats(0.0, 2.0)),
       activation=st.sampled_from(["leaky_relu", "relu", "sigmoid"]),
       loss=st.sampled_from(["mse", "softmax_ce"]), max_epochs=st.floats(1e-3, 1000.0),
       eval_every=st.integers(1, 10_000_000), zero_mean=st.booleans())
def test_round_trip_property(rule, hidden, seed, lr, alpha, activation, loss, max_epochs,
                             eval_every, zero_mean):
    config = RunConfig(rule=rule, hidden=hidden, seed=seed, lr=lr, alpha=alpha,
                       activation=activation, loss=loss, max_epochs=max_epochs,
                       eval_every=eval_every, zero_mean=zero_mean)
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
