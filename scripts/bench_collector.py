"""Both cores in one run: env steps/s with the envs stepped inline (one core) against
``collector=process`` (a worker process collects while the learner updates; two cores).

Same recipe, same machine, same session, runs alternated (inline, process, inline, ...) so a
change in the machine's load hits both. The figure is :attr:`robotac.train.TrainResult.
learning_sps`: env steps per second after ``learning_starts`` (random warm-up, evaluations and
checkpoints excluded). Also printed: the load average (1 min) before and after each run, and
an ``inline, num_threads=2`` row, the other way to give one run both cores (intra-op threads in
the update).

On a machine shared with other jobs the wall-clock figure says little about an idle one, so each
run also reports the CPU time per env step of the learner process and of the worker process
(whole run, warm-up included; ``/proc/<pid>/stat``), and the row gives the bound they imply for
an otherwise idle 2-core machine: inline CPU per step / the larger of the two processes' (the
lock-step rounds never run faster than the busier side).

CrossQ runs without the recipe's ``critic_layer_norm`` (its critics have Batch Renormalization
instead) and with its own 2048-unit critics unless ``--crossq-critic``.

    python scripts/bench_collector.py                       # SAC and CrossQ, steer recipe
    python scripts/bench_collector.py --algos sac --steps 3000 --repeats 2
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` [s] (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class WorkerCpu(threading.Thread):
    """Samples the CPU time of this process's ``robotac-collector`` child every 0.1 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.cpu_s, self.halt = 0.0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for p in mp.active_children():
                if p.name == "robotac-collector":
                    try:
                        self.cpu_s = _cpu_s(p.pid)
                    except (FileNotFoundError, ProcessLookupError):
                        pass
            self.halt.wait(0.1)


def run_once(recipe: str, algo: str, collector: str, threads: int, steps: int,
             learning_starts: int, chunk: int, crossq_critic: list[int] | None,
             seed: int) -> tuple[float, float, float]:
    """One training run; returns env steps/s after learning starts, and the CPU seconds per env
    step of the learner and of the worker (0 inline)."""
    from robotac.config import load_config_file
    from robotac.train import train

    cfg = load_config_file(recipe)
    kw = dict(algo=algo, collector=collector, collector_chunk=chunk, num_threads=threads,
              total_steps=learning_starts + steps, learning_starts=learning_starts,
              eval_every=0, eval_episodes=1, checkpoint_every=10**9, save_buffer=False,
              progress=False, video=False, export=False, seed=seed,
              run_dir=tempfile.mkdtemp(prefix="bench_collector_") + "/run")
    if algo == "crossq":
        kw.update(critic_layer_norm=False,
                  critic_hidden=None if crossq_critic is None else tuple(crossq_critic))
    cfg = dataclasses.replace(cfg, **kw)
    sampler = WorkerCpu()
    sampler.start()
    t = time.process_time()
    sps = float(train(cfg).learning_sps)
    learner = time.process_time() - t
    sampler.halt.set()
    sampler.join()
    total = learning_starts + steps
    return sps, learner / total, sampler.cpu_s / total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "quadruped_steer.yaml"))
    p.add_argument("--algos", nargs="+", default=["sac", "crossq"])
    p.add_argument("--steps", type=int, default=2000, help="measured steps after learning starts")
    p.add_argument("--crossq-steps", type=int, default=500,
                   help="measured steps for CrossQ (its 2048-unit critics are ~10x slower)")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--chunks", type=int, nargs="+", default=[1],
                   help="collector_chunk of the process runs (one row each)")
    p.add_argument("--crossq-critic", type=int, nargs="+", default=None,
                   help="CrossQ critic widths (default: CrossQ's own, 2048 2048)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-threads-row", action="store_true",
                   help="skip the inline num_threads=2 runs")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    # (collector, torch threads, collector_chunk)
    modes = [("inline", 1, 1)] + [("process", 1, c) for c in args.chunks] + (
        [] if args.no_threads_row else [("inline", 2, 1)])
    print(f"recipe {args.recipe}; {os.cpu_count()} CPUs")
    rows = []
    for algo in args.algos:
        steps = args.crossq_steps if algo == "crossq" else args.steps
        got: dict[tuple, list[float]] = {m: [] for m in modes}
        loads: dict[tuple, list[float]] = {m: [] for m in modes}
        cpu: dict[tuple, list[tuple[float, float]]] = {m: [] for m in modes}
        for r in range(args.repeats):
            for mode in modes:
                before = os.getloadavg()[0]
                sps, c_learn, c_work = run_once(
                    args.recipe, algo, mode[0], mode[1], steps, args.learning_starts, mode[2],
                    args.crossq_critic, args.seed + r)
                cpu[mode].append((c_learn, c_work))
                after = os.getloadavg()[0]
                got[mode].append(sps)
                loads[mode] += [before, after]
                print(f"  {algo:6s} {mode[0]:7s} threads={mode[1]} chunk={mode[2]} repeat {r}: "
                      f"{sps:7.1f} env steps/s, CPU per step learner {1e3 * c_learn:.2f} ms, "
                      f"worker {1e3 * c_work:.2f} ms (load avg 1 min {before:.2f} -> "
                      f"{after:.2f})", flush=True)
        base = sum(got[("inline", 1, 1)]) / len(got[("inline", 1, 1)])
        inline_cpu = sum(c for c, _ in cpu[("inline", 1, 1)]) / len(cpu[("inline", 1, 1)])
        for mode in modes:
            mean = sum(got[mode]) / len(got[mode])
            learner = sum(c for c, _ in cpu[mode]) / len(cpu[mode])
            worker = sum(w for _, w in cpu[mode]) / len(cpu[mode])
            bound = inline_cpu / max(learner, worker) if mode[0] == "process" else None
            rows.append((algo, mode, mean, mean / base, min(loads[mode]), max(loads[mode]),
                         learner, worker, bound))
    print()
    print("| algo | envs step | torch threads | env steps/s | vs inline, 1 thread | load avg "
          "(1 min) | CPU ms/step learner + worker | idle 2-core bound |")
    print("|---|---|---|---|---|---|---|---|")
    for algo, (mode, threads, chunk), mean, ratio, lo, hi, learner, worker, bound in rows:
        where = f"worker process, chunk {chunk}" if mode == "process" else "inline"
        print(f"| {algo} | {where} | {threads} | {mean:.1f} | {ratio:.2f}x | {lo:.1f}-{hi:.1f} | "
              f"{1e3 * learner:.2f} + {1e3 * worker:.2f} | "
              f"{'-' if bound is None else f'{bound:.2f}x'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
