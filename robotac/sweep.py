"""``robotac sweep``: hyperparameter and seed sweeps on Optuna, one study shared by many workers.

A sweep file (YAML) names a base recipe, a search space of :class:`~robotac.config.TrainConfig`
fields, the objective, the pruner and the seeds::

    name: pendulum_sac                  # study name (default: the file's stem)
    base: recipes/pendulum.yaml         # a recipe file, and/or ...
    config: {env: Pendulum-v1, total_steps: 20000, eval_every: 2000}  # ... fields over it
    space:
      critic_lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}
      gamma: {type: categorical, choices: [0.97, 0.99]}
      hidden: {type: categorical, choices: [[128, 128], [256, 256]]}
      env_kwargs.tracking_sigma: {type: float, low: 0.1, high: 0.5}
    metric: eval_return                 # eval_return | best_eval_return | mean_eval_return
    direction: maximize
    seeds: [1]                          # each trial trains once per seed; the objective is the mean
    pruner: {type: median, n_startup_trials: 5, n_warmup_steps: 0}
    sampler: {type: tpe}
    n_trials: 20                        # per worker (--n-trials overrides)

Every worker (``robotac sweep FILE --storage URL --study NAME`` on any machine) attaches to the
same study in an RDB storage (SQLite file ``<out>/study.db`` by default) with
``optuna.create_study(load_if_exists=True)``. Each trial is a normal run directory,
``<out>/trial-NNNN`` (``trial-NNNN-sS`` per seed when there are several seeds), so ``robotac
eval``, ``robotac export`` and ``robotac train --resume`` work on it. The deterministic evaluation
returns are reported to the trial every ``eval_every`` steps and the run stops when the pruner
says so (:func:`robotac.train.train`'s ``on_eval``). A space with an unknown field, a malformed
distribution or a value the config check refuses fails before any training starts.

Source: Akiba et al. 2019, "Optuna: A Next-generation Hyperparameter Optimization Framework";
rl-baselines3-zoo's ``hyperparams_opt.py`` (the same engine and pruning scheme).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import json
import math
import os
import socket
import sys
import time
import types
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from robotac.config import (
    ConfigError,
    TrainConfig,
    from_dict,
    load_config_file,
    resolved,
    validate,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["SweepError", "Param", "Sweep", "load_sweep", "parse_sweep", "run_worker",
           "write_report", "main"]

SWEEP_KEYS = ("name", "base", "config", "space", "metric", "direction", "seeds", "pruner",
              "sampler", "n_trials")
METRICS = ("eval_return", "best_eval_return", "mean_eval_return")
#: TrainConfig fields a space may not vary: the sweep sets them (``seeds:``, the trial's run
#: directory), or they are a mapping varied per key (``env_kwargs.KEY``).
NOT_IN_SPACE = {
    "seed": "list the seeds under `seeds:` instead",
    "run_dir": "the sweep gives every trial its own run directory",
    "resume": "the sweep starts every trial fresh",
    "stop_after_steps": "a trial runs to total_steps",
    "env_kwargs": "vary one env argument at a time as `env_kwargs.KEY`",
}
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner",
           "threshold": "ThresholdPruner", "successive_halving": "SuccessiveHalvingPruner",
           "hyperband": "HyperbandPruner", "none": "NopPruner"}
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler"}
DIST_KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
             "categorical": {"choices"}}
_HINTS = typing.get_type_hints(TrainConfig)
_ENV_KWARG_HINT = bool | int | float | str | tuple[float, ...]


class SweepError(ConfigError):
    """The sweep file is malformed, or its space would give a config that cannot run."""


def _require_optuna():
    try:
        import optuna
    except ModuleNotFoundError as e:
        raise SweepError("robotac sweep needs optuna: pip install -e '.[train]' (or "
                         "pip install 'optuna>=4,<6')") from e
    return optuna


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as read from YAML) fits the type annotation ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(map(_conforms, value, args))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _number(value: Any, where: str) -> float | int:
    """A YAML number; ``"1e-4"`` (which YAML 1.1 reads as a string) is accepted as a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SweepError(f"{where} must be a finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class Param:
    """One dimension of the search space.

    Attributes:
        name: A TrainConfig field (``critic_lr``) or ``env_kwargs.KEY``.
        kind: ``float``, ``int`` or ``categorical``.
        low: Lower bound (float/int).
        high: Upper bound (float/int), inclusive.
        log: Sample on a log scale.
        step: Discretisation step, or None.
        choices: The categorical values, as the config takes them (lists for ``hidden``).
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def candidates(self) -> list[Any]:
        """The values the pre-flight check tries: both bounds, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def _labels(self) -> list[Any]:
        """What Optuna stores: the choices themselves when scalar, else their JSON text."""
        scalar = all(c is None or isinstance(c, bool | int | float | str) for c in self.choices)
        return list(self.choices) if scalar else [json.dumps(c) for c in self.choices]

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this parameter's value for ``trial``."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log,
                                       step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log,
                                     step=self.step or 1)
        labels = self._labels()
        return self.choices[labels.index(trial.suggest_categorical(self.name, labels))]


@dataclass
class Sweep:
    """A parsed and checked sweep file."""

    name: str
    base: TrainConfig
    params: list[Param]
    metric: str = "eval_return"
    direction: str = "maximize"
    seeds: tuple[int, ...] = (1,)
    pruner: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "median"})
    sampler: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "tpe"})
    n_trials: int = 10

    def fingerprint(self) -> str:
        """What workers of one study must agree on: space, metric, direction and seeds."""
        return json.dumps({"space": [dataclasses.asdict(p) for p in self.params],
                           "metric": self.metric, "direction": self.direction,
                           "seeds": list(self.seeds)}, sort_keys=True, default=list)

    def trial_config(self, values: dict[str, Any], seed: int, run_dir: str | None) -> TrainConfig:
        """The base config with ``values`` (param name -> value) applied, resolved."""
        fields: dict[str, Any] = {}
        env_kwargs = dict(self.base.env_kwargs)
        for name, v in values.items():
            if name.startswith("env_kwargs."):
                env_kwargs[name.split(".", 1)[1]] = tuple(v) if isinstance(v, list) else v
            else:
                fields[name] = tuple(v) if isinstance(v, list) else v
        return resolved(dataclasses.replace(self.base, **fields, env_kwargs=env_kwargs,
                                            seed=seed, run_dir=run_dir, resume=None))


def _parse_param(name: str, spec: Any) -> Param:
    """One ``space:`` entry -> :class:`Param`, checking name, distribution and value types.

    Raises:
        SweepError: naming the field and the fix.
    """
    where = f"space field {name!r}"
    if name.startswith("env_kwargs."):
        hint = _ENV_KWARG_HINT
        if not name.split(".", 1)[1]:
            raise SweepError(f"{where}: name the env argument, e.g. env_kwargs.tracking_sigma")
    elif name in NOT_IN_SPACE:
        raise SweepError(f"{where} cannot be swept: {NOT_IN_SPACE[name]}")
    elif name in _HINTS:
        hint = _HINTS[name]
    else:
        close = difflib.get_close_matches(name, list(_HINTS), n=1)
        hint_text = f"did you mean {close[0]!r}? " if close else ""
        raise SweepError(f"{where} is not a TrainConfig field: {hint_text}known fields: "
                         f"{sorted(set(_HINTS) - set(NOT_IN_SPACE))}, or env_kwargs.KEY")
    if not isinstance(spec, dict) or "type" not in spec:
        raise SweepError(f"{where}: give a distribution mapping such as {{type: float, "
                         f"low: 1.0e-4, high: 1.0e-3, log: true}} or {{type: categorical, "
                         f"choices: [...]}}, got {spec!r}")
    kind = spec["type"]
    if kind not in DIST_KEYS:
        raise SweepError(f"{where}: unknown distribution type {kind!r}; use one of "
                         f"{sorted(DIST_KEYS)}")
    unknown = set(spec) - DIST_KEYS[kind] - {"type"}
    if unknown:
        raise SweepError(f"{where}: {sorted(unknown)} not understood by a {kind} distribution; "
                         f"its keys are {sorted(DIST_KEYS[kind])}")
    type_name = TrainConfig.__dataclass_fields__[name].type if name in _HINTS else \
        "bool | int | float | str | tuple[float, ...]"
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweepError(f"{where}: `choices` must be a non-empty list, got {choices!r}")
        fixed = []
        for c in choices:
            if isinstance(c, str) and not _conforms(c, hint):
                try:  # "1e-4": YAML 1.1 reads exponent floats without a dot as strings
                    c = float(c)
                except ValueError:
                    pass
            if not _conforms(c, hint):
                raise SweepError(f"{where}: choice {c!r} is not a valid {name} (type "
                                 f"{type_name}); fix the choices")
            fixed.append(c)
        return Param(name, kind, choices=tuple(fixed))
    for key in ("low", "high"):
        if key not in spec:
            raise SweepError(f"{where}: a {kind} distribution needs `low` and `high`")
    low, high = _number(spec["low"], f"{where} low"), _number(spec["high"], f"{where} high")
    step = None if spec.get("step") is None else _number(spec["step"], f"{where} step")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SweepError(f"{where}: `log` must be true or false, got {log!r}")
    if kind == "int":
        if any(isinstance(v, float) and not v.is_integer() for v in (low, high, step or 1)):
            raise SweepError(f"{where}: an int distribution needs integer low/high/step, got "
                             f"{spec!r}; use type: float for real values")
        low, high, step = int(low), int(high), None if step is None else int(step)
    else:
        low, high = float(low), float(high)
    if not low < high:
        raise SweepError(f"{where}: low={low} must be below high={high} (for a single value, "
                         f"set it in `config:` instead)")
    if log and (low <= 0 or step is not None):
        raise SweepError(f"{where}: log: true needs low > 0 and no step")
    if step is not None and step <= 0:
        raise SweepError(f"{where}: step must be > 0")
    if not (_conforms(low, hint) and _conforms(high, hint)):
        raise SweepError(f"{where}: a {kind} distribution draws {kind}s but {name} is "
                         f"{type_name}; use " + ("type: int" if hint is int else
                                                 "type: categorical with choices"))
    return Param(name, kind, low, high, log, step)


def _build(kind: str, spec: Any, table: dict[str, str], what: str):
    """An Optuna pruner or sampler from ``{type: NAME, **kwargs}``.

    Raises:
        SweepError: for an unknown type or arguments its class does not accept.
    """
    optuna = _require_optuna()
    spec = {"type": kind} if spec is None else spec
    if not isinstance(spec, dict) or spec.get("type") not in table:
        raise SweepError(f"{what}: give {{type: NAME, ...arguments}} with NAME one of "
                         f"{sorted(table)}, got {spec!r}")
    module = optuna.pruners if what == "pruner" else optuna.samplers
    cls = getattr(module, table[spec["type"]])
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning of some samplers
            return cls(**kwargs)
    except (TypeError, ValueError) as e:
        params = [p for p in inspect.signature(cls).parameters if p != "self"]
        raise SweepError(f"{what} {spec['type']} ({cls.__name__}) rejected {kwargs}: {e}; its "
                         f"arguments are {params}") from e


def parse_sweep(data: Any, source: str | Path = "<sweep>", name: str | None = None) -> Sweep:
    """Parse a sweep mapping and check it completely, before anything is trained or written.

    Checks: known keys; the base recipe and ``config:`` fields; every ``space:`` name (a
    TrainConfig field or ``env_kwargs.KEY``), its distribution and the type of its values; each
    candidate value (both bounds, every choice), and all lower and all upper values together,
    through :func:`robotac.config.validate`; the env id and every swept env argument by
    constructing the env; the metric, direction, seeds, pruner and sampler.

    Args:
        data: The parsed YAML mapping.
        source: The sweep file (relative ``base:`` paths are tried from the working directory,
            then from the file's folder), for messages.
        name: Study name when the mapping has no ``name:`` (default the file's stem).

    Returns:
        The checked :class:`Sweep`.

    Raises:
        SweepError: naming the key or space field at fault and the fix.
    """
    source = Path(source)
    if not isinstance(data, dict):
        raise SweepError(f"sweep file {source} must hold a mapping with keys {SWEEP_KEYS}")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise SweepError(f"sweep file {source}: unknown keys {unknown}; known keys: "
                         f"{list(SWEEP_KEYS)} (TrainConfig fields go under `config:`)")
    base_spec = data.get("base")
    if isinstance(base_spec, dict):
        base_fields = dict(base_spec)
    elif isinstance(base_spec, str):
        path = Path(base_spec)
        if not path.is_absolute() and not path.is_file():
            path = source.parent / base_spec
        if not path.is_file():
            raise SweepError(f"sweep file {source}: base recipe {base_spec!r} not found (tried "
                             f"the working directory and {source.parent})")
        base_fields = {k: v for k, v in dataclasses.asdict(load_config_file(path)).items()
                       if v != getattr(TrainConfig(), k)}
    elif base_spec is None:
        base_fields = {}
    else:
        raise SweepError(f"sweep file {source}: `base:` must be a recipe path or a mapping of "
                         f"TrainConfig fields, got {base_spec!r}")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise SweepError(f"sweep file {source}: `config:` must be a mapping of TrainConfig "
                         f"fields, got {config!r}")
    try:
        base = from_dict({**base_fields, **config})
    except (ConfigError, TypeError) as e:
        raise SweepError(f"sweep file {source}: base config: {e}") from e
    if base.stop_after_steps is not None:
        raise SweepError(f"sweep file {source}: stop_after_steps={base.stop_after_steps} in the "
                         "base config would stop every trial early; remove it")

    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise SweepError(f"sweep file {source}: `space:` must map TrainConfig fields to "
                         "distributions, e.g. critic_lr: {type: float, low: 1.0e-4, high: "
                         "1.0e-3, log: true}")
    params = [_parse_param(str(k), v) for k, v in space.items()]

    metric = data.get("metric", "eval_return")
    if metric not in METRICS:
        raise SweepError(f"sweep file {source}: metric {metric!r} is unknown; use one of "
                         f"{METRICS}")
    direction = data.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise SweepError(f"sweep file {source}: direction {direction!r}: use maximize or "
                         "minimize")
    seeds = data.get("seeds", [base.seed])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise SweepError(f"sweep file {source}: `seeds:` must be a non-empty list of integers, "
                         f"got {seeds!r}")
    n_trials = data.get("n_trials", 10)
    if not isinstance(n_trials, int) or n_trials < 0:
        raise SweepError(f"sweep file {source}: n_trials must be an integer >= 0")
    pruner = data.get("pruner") or {"type": "median"}
    sampler = data.get("sampler") or {"type": "tpe"}
    _build("median", pruner, PRUNERS, "pruner")
    _build("tpe", sampler, SAMPLERS, "sampler")
    if pruner.get("type") != "none" and not base.eval_every:
        raise SweepError(f"sweep file {source}: pruning needs intermediate evaluations but the "
                         "base config has eval_every=0: set eval_every (e.g. total_steps / 10) "
                         "in `config:`, or pruner: {type: none}")
    sweep = Sweep(str(data.get("name") or name or source.stem), base, params, metric,
                  direction, tuple(seeds), pruner, sampler, n_trials)
    _preflight(sweep, source)
    return sweep


def _preflight(sweep: Sweep, source: Path) -> None:
    """Validate every candidate value of every parameter on the base config; probe the env.

    Raises:
        SweepError: naming the field and value the config check or the env refused.
    """
    from robotac.env_utils import EnvError, check_spaces, make_env

    try:
        validate(sweep.trial_config({}, sweep.seeds[0], None))
    except ConfigError as e:
        raise SweepError(f"sweep file {source}: the base config is invalid: {e}") from e
    for p in sweep.params:
        for v in p.candidates():
            try:
                validate(sweep.trial_config({p.name: v}, sweep.seeds[0], None))
            except ConfigError as e:
                raise SweepError(f"space field {p.name!r}: value {v!r} is refused by the config "
                                 f"check ({e}); narrow its range or choices") from e
    for end in (0, -1):  # all parameters at their first, then at their last candidate
        values = {p.name: p.candidates()[end] for p in sweep.params}
        try:
            validate(sweep.trial_config(values, sweep.seeds[0], None))
        except ConfigError as e:
            raise SweepError(f"space: the combination {values} is refused by the config check "
                             f"({e}); make the ranges consistent") from e
    env_id, base_kwargs = sweep.base.env_id, dict(sweep.base.env_kwargs)
    probes: list[tuple[str | None, Any]] = [(None, None)]
    probes += [(p.name, v) for p in sweep.params if p.name.startswith("env_kwargs.")
               for v in p.candidates()]
    for name, v in probes:
        kwargs = dict(base_kwargs)
        if name is not None:
            kwargs[name.split(".", 1)[1]] = tuple(v) if isinstance(v, list) else v
        try:
            env = make_env(env_id, **kwargs)
            try:
                check_spaces(env, env_id)
            finally:
                env.close()
        except EnvError as e:
            who = "the base config" if name is None else f"space field {name!r} value {v!r}"
            raise SweepError(f"{who}: {e}") from e


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (see the module docstring); see :func:`parse_sweep`.

    Raises:
        SweepError: if the file is missing or unparsable, or any check fails.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SweepError(f"sweep file {path} could not be parsed: {e}") from e
    return parse_sweep(data, path)


def default_storage(out: Path) -> str:
    """SQLite URL of ``out/study.db`` (absolute, so workers may start from any directory)."""
    return f"sqlite:///{(out / 'study.db').resolve()}"


def open_study(sweep: Sweep, storage: str, study_name: str | None = None) -> optuna.Study:
    """Create the study in ``storage``, or attach to it (``load_if_exists=True``).

    Raises:
        SweepError: if the storage cannot be opened, or the study exists with another
            direction, space, metric or seeds.
    """
    optuna = _require_optuna()
    import sqlalchemy.exc

    name = study_name or sweep.name
    engine_kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    last: Exception | None = None
    # Workers opening a fresh database at once race to create the tables and to stamp the
    # schema version (IntegrityError on alembic_version, or "database is locked"): retry.
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeat is "experimental" in Optuna 4-5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # A worker that dies leaves no trial RUNNING forever: after grace_period
                # without a heartbeat its trial is marked failed.
                rdb = optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs,
                                                 heartbeat_interval=60, grace_period=180)
            study = optuna.create_study(
                storage=rdb, study_name=name, direction=sweep.direction, load_if_exists=True,
                pruner=_build("median", sweep.pruner, PRUNERS, "pruner"),
                sampler=_build("tpe", sweep.sampler, SAMPLERS, "sampler"))
            break
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as e:
            last = e
            time.sleep(0.5 * (attempt + 1))
        except (sqlalchemy.exc.ArgumentError, ImportError, ModuleNotFoundError) as e:
            raise SweepError(f"storage {_redact(storage)} cannot be opened: {e} (a URL such as "
                             "sqlite:///path/study.db or postgresql://user:pw@host/db; "
                             "PostgreSQL needs psycopg2 installed)") from e
    else:
        raise SweepError(f"storage {_redact(storage)} cannot be opened: {last}") from last
    if study.direction.name.lower() != sweep.direction:
        raise SweepError(f"study {name!r} in {_redact(storage)} maximizes/minimizes the other "
                         f"way ({study.direction.name.lower()}); use another --study name")
    fp = study.user_attrs.get("sweep")
    if fp is None:
        study.set_user_attr("sweep", sweep.fingerprint())
    elif fp != sweep.fingerprint():
        raise SweepError(f"study {name!r} in {_redact(storage)} was started with another space, "
                         "metric or seeds; attach workers with the same sweep file, or use "
                         "another --study name")
    return study


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for messages
        return url.split("@")[-1]


def _objective(sweep: Sweep, out: Path, trial: optuna.Trial) -> float:
    """Train the trial's config once per seed; report evaluations; prune; return the metric."""
    import csv

    optuna = _require_optuna()
    from robotac.train import train

    values = {p.name: p.suggest(trial) for p in sweep.params}
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    scores, run_dirs = [], []
    for k, seed in enumerate(sweep.seeds):
        suffix = f"-s{seed}" if len(sweep.seeds) > 1 else ""
        run_dir = out / f"trial-{trial.number:04d}{suffix}"
        cfg = sweep.trial_config(values, seed, str(run_dir))
        validate(cfg)  # a combination the pre-flight did not try fails this trial only
        run_dirs.append(str(run_dir))
        trial.set_user_attr("run_dirs", run_dirs)
        offset = k * cfg.total_steps  # seeds one after another on one step axis
        pruned_at: list[int] = []

        def on_eval(step: int, mean_return: float, offset=offset, pruned_at=pruned_at) -> bool:
            trial.report(mean_return, offset + step)
            if trial.should_prune():
                pruned_at.append(step)
                return True
            return False

        result = train(cfg, on_eval=on_eval)
        if pruned_at:
            raise optuna.TrialPruned(f"evaluation return behind at step {pruned_at[0]} of seed "
                                     f"{seed} ({run_dir})")
        if sweep.metric == "eval_return":
            score = result.final_eval_return
        elif sweep.metric == "best_eval_return":
            score = result.best_eval_return
        else:
            with open(run_dir / "eval.csv", newline="") as f:
                evals = [float(r["mean_return"]) for r in csv.DictReader(f)]
            score = sum(evals) / len(evals) if evals else None
        scores.append(float("nan") if score is None else float(score))
    trial.set_user_attr("scores", scores)
    return float(sum(scores) / len(scores))


def run_worker(sweep: Sweep, storage: str, out: Path, study_name: str | None = None,
               n_trials: int | None = None, timeout_s: float | None = None) -> optuna.Study:
    """Run ``n_trials`` trials of ``sweep`` in this process, in the shared study.

    A trial whose combination of values the config check refuses is recorded as failed (with
    the message) and the worker goes on.

    Args:
        sweep: The checked sweep.
        storage: RDB URL (``sqlite:///...``, ``postgresql://...``).
        out: Folder of the trial run directories.
        study_name: Study name (default ``sweep.name``).
        n_trials: Trials of this worker (default ``sweep.n_trials``).
        timeout_s: Start no new trial after this many seconds.

    Returns:
        The study.

    Raises:
        SweepError: if the storage cannot be opened or holds a different study of that name.
    """
    study = open_study(sweep, storage, study_name)
    n = sweep.n_trials if n_trials is None else n_trials
    if n > 0:
        study.optimize(lambda t: _objective(sweep, out, t), n_trials=n, timeout=timeout_s,
                       catch=(ConfigError,), gc_after_trial=True)
    return study


def _save_figure(ax_or_axes: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    ax = ax_or_axes.flat[0] if hasattr(ax_or_axes, "flat") else ax_or_axes
    fig = ax.figure
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)  # several workers may write the report: rename atomically
    plt.close(fig)
    os.replace(tmp, path)


def write_report(study: optuna.Study, sweep: Sweep, report_dir: str | Path,
                 storage: str = "", top: int = 10) -> Path:
    """Write ``best_trials.md`` and Optuna's plots (matplotlib) into ``report_dir``.

    Plots: ``optimization_history.png``, ``intermediate_values.png`` (the pruned curves) and
    ``param_importances.png`` (PED-ANOVA; skipped, with the reason in the table's notes, when
    too few trials are complete).

    Returns:
        The path of ``best_trials.md``.
    """
    _require_optuna()
    import matplotlib

    matplotlib.use("Agg")
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value)]
    done.sort(key=lambda t: t.value, reverse=sweep.direction == "maximize")
    names = [p.name for p in sweep.params]

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = [
        f"# Sweep `{study.study_name}`",
        "",
        f"{sweep.direction} `{sweep.metric}` over seeds {list(sweep.seeds)}; env "
        f"`{sweep.base.env_id}`, algo `{sweep.base.algo or 'sac'}`, total_steps "
        f"{sweep.base.total_steps}; storage `{_redact(storage)}`; pruner "
        f"`{sweep.pruner}`.",
        "",
        "Trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".",
        "",
        "| rank | trial | value | " + " | ".join(f"`{n}`" for n in names) + " | run directory |",
        "|---:|---:|---:|" + "---|" * len(names) + "---|",
    ]
    for rank, t in enumerate(done[:top], 1):
        dirs = ", ".join(f"`{d}`" for d in t.user_attrs.get("run_dirs", []))
        host = t.user_attrs.get("host")
        lines.append(f"| {rank} | {t.number} | {t.value:.2f} | "
                     + " | ".join(fmt(t.params.get(n, "")) for n in names)
                     + f" | {dirs}{f' on {host}' if host else ''} |")
    if not done:
        lines.append("| - | - | - |" + " - |" * len(names) + " no complete trial yet |")
    notes = []
    plots = [("optimization_history.png", ovm.plot_optimization_history, "optimization history"),
             ("intermediate_values.png", ovm.plot_intermediate_values,
              "intermediate evaluation returns (pruned trials stop early)"),
             ("param_importances.png", ovm.plot_param_importances, "parameter importances")]
    for file, plot, title in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning, few-trials warnings
                _save_figure(plot(study), report_dir / file)
            notes.append(f"![{title}]({file})")
        except Exception as e:  # noqa: BLE001 - a plot Optuna cannot draw yet is only noted
            notes.append(f"{title}: not plotted ({type(e).__name__}: {e})")
    lines += ["", *[f"{n}\n" for n in notes]]
    path = report_dir / "best_trials.md"
    tmp = path.with_name(f".best_trials.{os.getpid()}.md")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, path)
    return path


def main(argv: list[str]) -> int:
    """``robotac sweep FILE [--storage URL] [--study NAME] [--n-trials N] [--out DIR]
    [--report DIR] [--timeout S]``: check the sweep, run this worker's trials, write the report.

    Raises:
        SweepError: for a bad sweep file or storage (the CLI prints it and exits with 2).
    """
    p = argparse.ArgumentParser(
        prog="robotac sweep",
        description="Hyperparameter/seed sweep on Optuna. Each invocation is one worker of the "
        "study; run it on more machines with the same --storage URL and --study to add workers.")
    p.add_argument("sweep_file", help="sweep YAML: base recipe, space, metric, pruner, seeds")
    p.add_argument("--storage", default=None,
                   help="RDB URL of the shared study, e.g. postgresql://user:pw@host/db "
                   "(default sqlite:///<out>/study.db)")
    p.add_argument("--study", default=None, help="study name (default: the file's name: or stem)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="trials of this worker (default the file's n_trials, else 10); 0 only "
                   "checks the file and writes the report")
    p.add_argument("--out", default=None,
                   help="folder of the trial run directories (default runs/<study>)")
    p.add_argument("--report", default=None,
                   help="folder for best_trials.md and the plots (default <out>/report), e.g. "
                   "docs/sweeps/NAME")
    p.add_argument("--timeout", type=float, default=None,
                   help="start no new trial after this many seconds")
    args = p.parse_args(argv)
    if args.n_trials is not None and args.n_trials < 0:
        p.error("--n-trials must be >= 0")
    _require_optuna()
    sweep = load_sweep(args.sweep_file)
    study_name = args.study or sweep.name
    out = Path(args.out) if args.out else Path("runs") / study_name
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or default_storage(out)
    print(f"sweep {study_name}: {len(sweep.params)} parameters checked "
          f"({', '.join(q.name for q in sweep.params)}); study in {_redact(storage)}; trial run "
          f"directories in {out}/", flush=True)
    study = run_worker(sweep, storage, out, study_name, args.n_trials, args.timeout)
    report = write_report(study, sweep, Path(args.report) if args.report else out / "report",
                          storage)
    try:
        best = study.best_trial
        print(f"best trial {best.number}: {sweep.metric} {best.value:.2f} with {best.params} "
              f"({', '.join(best.user_attrs.get('run_dirs', []))})")
    except ValueError:
        print("no complete trial yet")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    from robotac.cli import main as cli_main

    sys.exit(cli_main(["sweep", *sys.argv[1:]]))
