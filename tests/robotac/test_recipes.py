"""Every training recipe in recipes/ loads and passes validation (a typo fails here, not an hour
into a run)."""

from pathlib import Path

import pytest

from robotac.config import load_config_file, resolved, validate

RECIPES = sorted(p for p in (Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml")
                 if not p.name.startswith("sweep_"))  # sweep files are robotac sweep's format


def test_recipes_exist():
    assert {"quadruped_steer.yaml", "quadruped_steer_fast.yaml"} <= {p.name for p in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates(path):
    cfg = resolved(load_config_file(path))
    validate(cfg)
    assert cfg.env_id and cfg.total_steps > cfg.learning_starts


def test_fast_steer_recipe_is_the_steer_recipe_with_crossq_and_the_collector():
    """The fast candidate differs from the steer recipe only where its header says."""
    root = RECIPES[0].parent
    steer = load_config_file(root / "quadruped_steer.yaml").__dict__
    fast = load_config_file(root / "quadruped_steer_fast.yaml").__dict__
    differ = {k for k in steer if steer[k] != fast[k]}
    assert differ == {"algo", "critic_layer_norm", "critic_hidden", "collector",
                      "collector_chunk"}
    assert fast["algo"] == "crossq" and fast["collector"] == "process"
