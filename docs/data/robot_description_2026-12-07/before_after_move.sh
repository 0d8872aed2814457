#!/bin/bash
# Item 8: the default robot's shipped policy grid and env steps/s, before the description move
# (724e02e^ = ee2a1c7) and now (this branch), in the same run, alternating.
set -x
OUT=/tmp/item8; mkdir -p $OUT
PY=/work/wt-robot2/.venv/bin/python
uptime
for tree in /tmp/robotac_before_move /work/wt-robot2; do
  name=$(basename $tree)
  (cd $tree && PYTHONPATH=$tree nice -n 5 $PY scripts/eval_gait.py --onnx /work/wt-robot2/policies/pretrained/quadruped_sac.onnx --grid --episodes 2 --json $OUT/grid_$name.json > $OUT/grid_$name.txt 2>&1)
done
uptime
for round in 1 2 3; do
  for tree in /tmp/robotac_before_move /work/wt-robot2; do
    name=$(basename $tree)
    (cd $tree && PYTHONPATH=$tree nice -n 5 $PY scripts/bench_envs.py --steps 3000 --rounds 1 >> $OUT/bench_$name.txt 2>&1)
    uptime >> $OUT/bench_$name.txt
  done
done
uptime
