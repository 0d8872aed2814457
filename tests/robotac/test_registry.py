"""One algorithm registry: config, trainers, checkpoints and CLI read robotac.registry, no cycle."""

import subprocess
import sys
import typing

import numpy as np
import pytest

from robotac import registry
from robotac.algos import OffPolicyAlgo, make_algo
from robotac.checkpoint import ACTOR_CLASSES, CheckpointError, build_actor
from robotac.cli import USAGE
from robotac.config import ConfigError, TrainConfig, resolved, validate


def test_config_imports_no_trainer_and_no_torch():
    """A fresh interpreter imports the config without the trainers (the old import circle:
    config reached into robotac.algos for ALGORITHMS while algos imported TrainConfig)."""
    code = ("import sys, robotac.config; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('robotac')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "['robotac', 'robotac.config', 'robotac.registry']"


@pytest.mark.parametrize("name", registry.ALGO_NAMES)
def test_every_registered_algorithm_builds_resolves_and_rebuilds_its_actor(name):
    spec = registry.get(name)
    assert name in typing.get_args(registry.AlgoName)
    cfg = resolved(TrainConfig(env_id="Pendulum-v1", algo=name, hidden=(8,),
                               critic_hidden=(8,)))
    validate(cfg)
    for field in registry.COMMON_DEFAULTS:
        want = spec.default(field)
        assert getattr(cfg, field) == (want if field != "critic_hidden" else (8,))
    low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    algo = make_algo(cfg, 3, low, high, num_envs=1)
    assert isinstance(algo, OffPolicyAlgo) and type(algo) is spec.load()
    assert algo.name == name and algo.policy_delay == spec.default("policy_delay")
    meta = {"algo": name, "obs_dim": 3, "action_low": [-2.0], "action_high": [2.0],
            "config": {"hidden": [8]}}
    actor = build_actor(meta)
    assert type(actor) is ACTOR_CLASSES[spec.actor] and type(actor) is type(algo.actor)
    actor.load_state_dict(algo.actor.state_dict())  # the checkpoint's actor loads into it
    assert spec.title in USAGE


def test_unknown_algorithms_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"algo='ppo' is invalid: choose one of \['sac'"):
        validate(resolved(TrainConfig(env_id="Pendulum-v1", algo="ppo")))
    with pytest.raises(ValueError, match=r"unknown algorithm 'ppo'; choose one of"):
        registry.get("ppo")
    with pytest.raises(CheckpointError, match="unknown algorithm 'ppo'"):
        build_actor({"algo": "ppo", "obs_dim": 3, "action_low": [-1.0], "action_high": [1.0],
                     "config": {"hidden": [8]}})


def test_a_spec_may_default_only_algorithm_dependent_fields():
    with pytest.raises(ValueError, match=r"defaults \['gamma'\] are not algorithm-dependent"):
        registry.AlgoSpec("x", "X", "robotac.algos:SAC", "squashed_gaussian", {"gamma": 0.9})


def test_a_switch_an_algorithm_does_not_use_is_refused_by_config_and_trainer():
    for name, spec in registry.ALGORITHMS.items():
        for field in spec.refused:
            with pytest.raises(ConfigError, match=f"{field}=True is invalid: {spec.title} "
                                                  "would ignore it: .*; drop --"):
                validate(resolved(TrainConfig(env_id="Pendulum-v1", algo=name,
                                              **{field: True})))
            with pytest.raises(ValueError, match=f"{field}=True is not used by {spec.title}: "
                                                 ".*; drop "):
                make_algo(resolved(TrainConfig(env_id="x", algo=name, hidden=(8,),
                                               critic_hidden=(8,), **{field: True})),
                          3, np.array([-1.0], np.float32), np.array([1.0], np.float32), 1)
