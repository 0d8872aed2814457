"""The robot description (issue 23): the default quadruped is data, with its figures unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import robotac  # noqa: F401  (registers robotac/Quadruped-v0)
from envs.interface import (
    QUADRUPED_COMMAND_RANGES,
    QUADRUPED_INTERFACE,
    interface_from_description,
    mirror_maps,
)
from envs.robot_description import (
    ROBOTS_DIR,
    DescriptionError,
    load_description,
    read_yaml,
)

DATA = Path(__file__).parent / "data"
SHIPPED = sorted(p for p in ROBOTS_DIR.iterdir() if (p / "robot.yaml").is_file())


def test_the_quadruped_interface_equals_the_one_before_the_move():
    """Field by field, against ``to_dict()`` saved from the code before issue 23."""
    ref = json.loads((DATA / "quadruped_interface_before_issue23.json").read_text())
    now = QUADRUPED_INTERFACE.to_dict()
    assert now.keys() == ref["interface"].keys()
    for key, value in ref["interface"].items():
        assert now[key] == value, key  # exact: the same floats, e.g. -0.6 + pi
    assert {k: list(v) for k, v in QUADRUPED_COMMAND_RANGES.items()} == ref["command_ranges"]
    m = mirror_maps(QUADRUPED_INTERFACE)
    for key, value in ref["mirror"].items():
        assert getattr(m, key).tolist() == value, key


def test_the_quadruped_steps_as_before_the_move():
    """The same seed and actions give the same observations and rewards, to the last bit: the
    physics is the same code path, and the servo model the sim writes from robot.yaml equals the
    MJCF's compiled one bit for bit (8 * pi is exact), so the tolerance is 0."""
    ref = np.load(DATA / "quadruped_trajectory_before_issue23.npz")
    env = gym.make("robotac/Quadruped-v0", robot="quadruped", friction_range=(0.6, 1.2),
                   added_mass_range_kg=(-0.1, 0.3), motor_strength_range=(0.8, 1.1))
    obs, _ = env.reset(seed=123)
    observations, rewards = [obs], []
    for a in ref["action"]:
        obs, reward, terminated, truncated, _ = env.step(a)
        observations.append(obs)
        rewards.append(reward)
    np.testing.assert_array_equal(np.array(observations), ref["obs"])
    np.testing.assert_array_equal(np.array(rewards), ref["reward"])


def test_a_robot_is_found_by_name_or_folder(tmp_path):
    by_name = load_description("quadruped")
    by_path = load_description(str(ROBOTS_DIR / "quadruped"))
    assert by_name.sha256 == by_path.sha256 and len(by_name.sha256) == 64
    env = gym.make("robotac/Quadruped-v0", robot=str(ROBOTS_DIR / "quadruped"))
    assert env.unwrapped.interface == QUADRUPED_INTERFACE
    assert interface_from_description(by_path) == QUADRUPED_INTERFACE
    with pytest.raises(DescriptionError, match="no robot description 'dog'.*quadruped"):
        load_description("dog")


def test_the_hash_covers_robot_yaml_and_the_mjcf(tmp_path):
    src = ROBOTS_DIR / "quadruped"
    for f in ("robot.yaml", "quadruped.xml"):
        (tmp_path / f).write_bytes((src / f).read_bytes())
    base = load_description(tmp_path).sha256
    assert base == load_description("quadruped").sha256
    (tmp_path / "quadruped.xml").write_bytes((src / "quadruped.xml").read_bytes() + b"\n")
    assert load_description(tmp_path).sha256 != base


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_the_yaml_reader_agrees_with_pyyaml_on_the_shipped_descriptions(folder):
    text = (folder / "robot.yaml").read_text()
    assert read_yaml(text) == yaml.safe_load(text)


def test_the_yaml_reader_on_the_subset():
    text = """
    # comment
    a: 1
    b: -2.5e-3   # trailing
    c: [1, [2, 3], {x: 'y # z', w: true}]
    d:
      - {name: j, r: [-0.6, 0.6]}
      - plain text
    e:
    - 1
    f: "quoted: yes"
    g: null
    """
    text = "\n".join(line[4:] for line in text.splitlines())
    assert read_yaml(text) == yaml.safe_load(text)
