"""Validated run configuration: every field is checked here, before any work starts."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Optional, Union

from ._validate import check_choice, check_number
from .errors import ConfigError
from .network import ACTIVATIONS, LOSSES
from .rules import RULES, Backprop, Rule, make_rule

HARDWARE_MODES = ("accounting", "in-the-loop")
STOP_ON = ("test", "validation")
OWNER = "RunConfig"


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (the defaults are the study's recipe).

    Attributes
    ----------
    rule : the plasticity rule object (``neuroenergy.rules``)
    hidden : number of hidden units, the clamped bias unit included; a tuple of them for
        several hidden layers (each with its own bias unit 0), e.g. (300, 100)
    seed : seeds initialisation, path choice, sampling and kernel randomness
    lr, lr_out : learning rate of the input layer, and of the output layer (default: lr)
    init_std : std of the Gaussian initial weights in both layers
    activation, leak : hidden nonlinearity and the leaky-ReLU negative slope
    loss : 'mse' (linear output, squared error) or 'softmax_ce'
    dataset : 'mnist', 'fashion-mnist', or a folder of IDX files
    target_accuracy : stop at the first evaluation at or above this test accuracy
    max_epochs : give up after this many epochs (1 epoch = n_train samples drawn; with
        stop_on='validation', the training part only)
    stop_on : 'test' (the study: stop at the first test evaluation >= target) or 'validation'
        (stop on a split carved from the training set; the test set is only reported)
    validation_size : images held out of training when stop_on='validation'
    eval_every : evaluate the full test set every this many samples
    alpha : also meter sum |dw|^alpha for this exponent (M0 and M1 are always metered)
    noise_std, zero_mean, data_seed : input preprocessing (tie-breaking noise, centring)
    hardware : hardware preset names whose write costs are tallied during training
    hardware_mode : 'accounting' (float weights) or 'in-the-loop' (the first preset holds them)
    hardware_w_max : electronic devices map weights in [-w_max, w_max] onto their range
    """

    rule: Rule = field(default_factory=Backprop)
    hidden: Union[int, tuple] = 100
    seed: int = 0
    lr: float = 0.01
    lr_out: Optional[float] = None
    init_std: float = 0.03
    activation: str = "leaky_relu"
    leak: float = 0.1
    loss: str = "mse"
    dataset: str = "mnist"
    target_accuracy: float = 0.95
    max_epochs: float = 5.0
    eval_every: int = 2000
    stop_on: str = "test"
    validation_size: int = 10_000
    alpha: Optional[float] = None
    noise_std: float = 0.001
    zero_mean: bool = True
    data_seed: int = 0
    hardware: tuple = ()
    hardware_mode: str = "accounting"
    hardware_w_max: float = 0.5

    def __post_init__(self):
        if not isinstance(self.rule, Rule):
            raise ConfigError(f"The 'rule' parameter of {OWNER} must be a Rule object (one of "
                              f"{', '.join(RULES)}). Got {self.rule!r} instead.")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("hidden", _check_hidden(self.hidden))
        set_("seed", check_number(self.seed, "seed", OWNER, 0, 2**63 - 1, integer=True))
        set_("lr", check_number(self.lr, "lr", OWNER, 0.0, 10.0, lo_open=True))
        if self.lr_out is not None:
            set_("lr_out", check_number(self.lr_out, "lr_out", OWNER, 0.0, 10.0, lo_open=True))
        set_("init_std", check_number(self.init_std, "init_std", OWNER, 0.0, 10.0))
        check_choice(self.activation, "activation", OWNER, ACTIVATIONS)
        set_("leak", check_number(self.leak, "leak", OWNER, 0.0, 1.0))
        check_choice(self.loss, "loss", OWNER, LOSSES)
        if not isinstance(self.dataset, (str, os.PathLike)) or not str(self.dataset):
            raise ConfigError(f"The 'dataset' parameter of {OWNER} must be 'mnist', "
                              f"'fashion-mnist' or a folder path. Got {self.dataset!r} instead.")
        set_("dataset", str(self.dataset))
        set_("target_accuracy", check_number(self.target_accuracy, "target_accuracy", OWNER,
                                             0.0, 1.0, lo_open=True))
        set_("max_epochs", check_number(self.max_epochs, "max_epochs", OWNER, 0.0, 1000.0,
                                        lo_open=True))
        set_("eval_every", check_number(self.eval_every, "eval_every", OWNER, 1, 10_000_000,
                                        integer=True))
        check_choice(self.stop_on, "stop_on", OWNER, STOP_ON)
        set_("validation_size", check_number(self.validation_size, "validation_size", OWNER,
                                             1, 10_000_000, integer=True))
        if self.alpha is not None:
            set_("alpha", check_number(self.alpha, "alpha", OWNER, 0.0, 2.0))
        set_("noise_std", check_number(self.noise_std, "noise_std", OWNER, 0.0, 1.0))
        if not isinstance(self.zero_mean, bool):
            raise ConfigError(f"The 'zero_mean' parameter of {OWNER} must be a bool. "
                              f"Got {self.zero_mean!r} instead.")
        set_("data_seed", check_number(self.data_seed, "data_seed", OWNER, 0, 2**32 - 1,
                                       integer=True))
        hw = () if self.hardware is None else self.hardware  # None: no pricing
        if isinstance(hw, str):
            hw = tuple(h.strip() for h in hw.split(",") if h.strip())
        try:
            hw = tuple(hw)
        except TypeError:
            raise ConfigError(f"The 'hardware' parameter of {OWNER} must be a list of preset "
                              f"names or a comma-separated string. Got {self.hardware!r} "
                              "instead.") from None
        set_("hardware", hw)
        check_choice(self.hardware_mode, "hardware_mode", OWNER, HARDWARE_MODES)
        set_("hardware_w_max", check_number(self.hardware_w_max, "hardware_w_max", OWNER,
                                            0.0, 100.0, lo_open=True))
        if self.hardware_mode == "in-the-loop" and not self.hardware:
            raise ConfigError("hardware_mode 'in-the-loop' needs at least one hardware preset "
                              "(the first one holds the weights). Got hardware=() instead.")
        if self.hardware:
            from .hardware import check_presets
            set_("hardware", check_presets(self.hardware))
        for size in self.hidden_layers:
            self.rule.validate(size)

    @property
    def hidden_layers(self) -> tuple:
        """Units per hidden layer, as a tuple (one entry for the study's network)."""
        return self.hidden if isinstance(self.hidden, tuple) else (self.hidden,)

    @property
    def lr_output(self) -> float:
        return self.lr if self.lr_out is None else self.lr_out

    def to_dict(self) -> dict:
        """A JSON-able dict: the rule as {'name': ..., **params}."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rule"}
        d["hardware"] = list(self.hardware)
        if isinstance(self.hidden, tuple):
            d["hidden"] = list(self.hidden)
        d["rule"] = {"name": self.rule.name, **self.rule.params()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        d = dict(d)
        rule = d.pop("rule", {"name": "backprop"})
        if isinstance(rule, dict):
            rule = dict(rule)
            rule = make_rule(rule.pop("name"), **rule)
        elif isinstance(rule, str):
            rule = make_rule(rule)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {', '.join(unknown)}; known "
                              f"fields are {', '.join(sorted(known))}.")
        if "hardware" in d and isinstance(d["hardware"], list):
            d["hardware"] = tuple(d["hardware"])
        return cls(rule=rule, **d)

    def replace(self, **changes) -> "RunConfig":
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(changes)
        return type(self)(**d)


def _check_hidden(hidden):
    """An int >= 2, or a non-empty tuple (or list) of them; a 1-tuple becomes its int."""
    msg = ("The 'hidden' parameter of RunConfig must be an int in the range [2, 1000000] or a "
           f"non-empty tuple of them (one per hidden layer). Got {hidden!r} instead.")
    if isinstance(hidden, (list, tuple)):
        if not hidden:
            raise ConfigError(msg)
        sizes = tuple(check_number(h, "hidden", OWNER, 2, 1_000_000, integer=True)
                      for h in hidden)
        return sizes[0] if len(sizes) == 1 else sizes
    return check_number(hidden, "hidden", OWNER, 2, 1_000_000, integer=True)
