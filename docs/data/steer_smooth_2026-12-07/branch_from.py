"""How the late-smoothness runs of seed 1 were started (a record, not a product tool).

Branch a run from a snapshot checkpoint with another recipe whose settings equal the
snapshot's before the snapshot step, checked here: every curriculum value (command ranges,
shares, randomization, reward weights) at every 1000th step before it, CAPS ramp starting at or
after it, and no other config field changed. Rewrites the copied checkpoint's meta config and
config.json; then ``robotac train --resume RUN`` continues it, on the trajectory a run of the
recipe from step 0 would have taken.

    python branch_from.py SNAPSHOT_DIR RUN_DIR RECIPE.yaml SEED
"""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import torch

from envs.quadruped import QuadrupedEnv
from robotac.config import TrainConfig, load_config_file, resolved

MAY_CHANGE = {"env_kwargs", "caps_temporal_weight", "caps_spatial_weight", "caps_ramp_steps",
              "run_dir", "total_steps", "keep_every", "caps_sigma"}


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def main(snap: str, run: str, recipe: str, seed: int) -> None:
    ck = torch.load(f"{snap}/checkpoints/latest.pt", map_location="cpu", weights_only=False)
    old, step = ck["meta"]["config"], ck["meta"]["global_step"]
    new = json.loads(json.dumps(dataclasses.asdict(resolved(load_config_file(recipe)))))
    new.update(seed=seed, run_dir=run, resume=old.get("resume"))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    env_old, env_new = QuadrupedEnv(**old["env_kwargs"]), QuadrupedEnv(**new["env_kwargs"])
    for s in range(0, step, 1000):
        assert _same(env_old.curriculum_values(s), env_new.curriculum_values(s)), s
    caps = new["caps_temporal_weight"] > 0 or new["caps_spatial_weight"] > 0
    ramp = new.get("caps_ramp_steps")
    # CAPS off, on only from the step, or on the snapshot's own schedule
    assert not caps or (ramp and (ramp[0] >= step or _same(ramp, old.get("caps_ramp_steps")))), ramp
    changed = sorted(k for k in fields if not _same(old.get(k), new.get(k)))
    print("step", step, "changed", changed)
    assert set(changed) <= MAY_CHANGE, changed
    Path(run, "checkpoints").mkdir(parents=True)
    for f in ("episodes.csv", "eval.csv"):
        if Path(snap, f).exists():
            shutil.copy(Path(snap, f), Path(run, f))
    old.update({k: new[k] for k in fields if k in new})
    torch.save(ck, f"{run}/checkpoints/latest.pt")
    saved = json.loads(Path(snap, "config.json").read_text())
    saved.update({k: new[k] for k in fields if k in new})
    Path(run, "config.json").write_text(json.dumps(saved, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
