"""The algorithms robotac trains: one table that the config, the trainers, checkpoints and the CLI
read.

Adding an algorithm is one :class:`AlgoSpec` entry in :data:`ALGORITHMS` (and the class it
names). Everything else follows from the table:

* ``TrainConfig.algo``'s choices and ``--help`` (:data:`AlgoName`), :func:`robotac.config.validate`;
* the algorithm's defaults of the config fields left at ``None`` (``policy_delay``, learning
  rates, critic widths, Adam betas), filled by :func:`robotac.config.resolved`;
* which trainer :func:`robotac.algos.make_algo` builds (:meth:`AlgoSpec.load`);
* which actor :func:`robotac.checkpoint.build_actor` rebuilds from a checkpoint or for export;
* the algorithms ``robotac train --help`` lists.

This module imports nothing of robotac and no torch (an import-linter contract keeps it so), so
the config reads it without importing a trainer, and the trainers read it without a cycle: the
classes are named by import path and imported only when one is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["AlgoSpec", "ALGORITHMS", "ALGO_NAMES", "AlgoName", "DEFAULT_ALGO", "get",
           "COMMON_DEFAULTS"]

#: Defaults of the algorithm-dependent config fields (those whose ``TrainConfig`` default is
#: ``None``) that an algorithm does not set itself. ``critic_hidden: None`` means "as ``hidden``".
COMMON_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "policy_delay": 1,
    "actor_lr": 3e-4,
    "critic_lr": 3e-4,
    "alpha_lr": 3e-4,
    "critic_hidden": None,
    "adam_betas": (0.9, 0.999),
})


@dataclass(frozen=True)
class AlgoSpec:
    """One trainable algorithm.

    Attributes:
        name: ``TrainConfig.algo`` value, the checkpoint's and ONNX file's ``algo`` entry.
        title: Its usual written name, as ``--help`` lists it (``"SAC"``, ``"CrossQ"``).
        cls: Import path of the trainer class, ``"module:Class"`` (a subclass of
            :class:`robotac.algos.OffPolicyAlgo`).
        actor: The actor it trains and ships: ``"squashed_gaussian"``
            (:class:`policies.networks.SquashedGaussianActor`) or ``"deterministic"``
            (:class:`policies.networks.DeterministicActor`).
        defaults: Its values of the config fields in :data:`COMMON_DEFAULTS`, where they differ.
        refused: Boolean config fields it does not use, with the reason: set to True they are
            refused (by :func:`robotac.config.validate` and the trainer), not silently ignored.
    """

    name: str
    title: str
    cls: str
    actor: Literal["squashed_gaussian", "deterministic"]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.defaults) - set(COMMON_DEFAULTS)
        if unknown:
            raise ValueError(f"{self.name}: defaults {sorted(unknown)} are not algorithm-"
                             f"dependent config fields {sorted(COMMON_DEFAULTS)}")

    def default(self, field_name: str) -> Any:
        """This algorithm's default of an algorithm-dependent config field."""
        return self.defaults.get(field_name, COMMON_DEFAULTS[field_name])

    def refusal(self, field_name: str, cli: bool) -> str:
        """Why this algorithm refuses a set ``field_name`` and what to do instead, naming the
        command-line flags (``cli``) or the config fields."""
        others = [n for n, s in ALGORITHMS.items() if field_name not in s.refused]
        if cli:
            fix = f"drop --{field_name.replace('_', '-')} or use --algo {' or '.join(others)}"
        else:
            fix = f"drop {field_name} or use " + " or ".join(f"algo={n!r}" for n in others)
        return f"{self.refused[field_name]}; {fix}"

    def load(self) -> type:
        """Import and return the trainer class (imports torch)."""
        module, _, cls = self.cls.partition(":")
        return getattr(importlib.import_module(module), cls)


_OU = "Ornstein-Uhlenbeck exploration is DDPG's"

_SPECS = (
    AlgoSpec("sac", "SAC", "robotac.algos:SAC", "squashed_gaussian", refused={"ou_noise": _OU}),
    AlgoSpec("td3", "TD3", "robotac.algos:TD3", "deterministic", {"policy_delay": 2},
             refused={"ou_noise": _OU}),
    AlgoSpec("ddpg", "DDPG", "robotac.algos:DDPG", "deterministic"),
    # Bhatt et al. 2024 (ICLR), hyperparameters of its appendix as sbx and sb3-contrib take them:
    # learning rate 1e-3 (actor, critic and temperature), Adam beta1 0.5, policy delay 3,
    # 2048-unit critics (sb3-contrib narrows them to 1024 for speed; we keep the paper's).
    AlgoSpec("crossq", "CrossQ", "robotac.crossq:CrossQ", "squashed_gaussian",
             {"policy_delay": 3, "actor_lr": 1e-3, "critic_lr": 1e-3, "alpha_lr": 1e-3,
              "critic_hidden": (2048, 2048), "adam_betas": (0.5, 0.999)},
             refused={"ou_noise": _OU,
                      "critic_layer_norm": "Batch Renormalization normalizes CrossQ's critic"}),
)

#: The algorithms by name, in the order ``--help`` lists them.
ALGORITHMS: Mapping[str, AlgoSpec] = MappingProxyType({s.name: s for s in _SPECS})
ALGO_NAMES: tuple[str, ...] = tuple(ALGORITHMS)
#: ``Literal["sac", "td3", ...]`` built from the table, the type of ``TrainConfig.algo``.
AlgoName = Literal[ALGO_NAMES]  # type: ignore[valid-type]
#: The algorithm of a config that names none.
DEFAULT_ALGO = "sac"


def get(name: str) -> AlgoSpec:
    """The spec of algorithm ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {list(ALGO_NAMES)}") from None
