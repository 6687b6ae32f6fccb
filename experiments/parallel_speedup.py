"""What `gan.ablate --parallel=N` buys on this machine: the same small study run whole with
--parallel=1 (one training at a time, all cores each) and with --parallel=N (N at a time, each
capped to cores/N threads), in one run of this script; prints each wall time and the ratio.
With --compare=warm_start: the study with each training started cold (--nowarm_start, its own
python -m gan.train) against forked from the warm server (the default), both --parallel=1.

    python experiments/parallel_speedup.py                 # about 6 minutes on 2 cores
    python experiments/parallel_speedup.py --runs=4 --steps=1000 --parallel=2
    python experiments/parallel_speedup.py --compare=warm_start --runs=8 --steps=100

The study is mnist_mlp.flags (the studies' base) over --runs seeds, --steps iterations each,
evaluation off: what is timed is the runner and its trainings, start-up included.
"""

import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_integer("runs", 4, "Trainings in the study (seeds 0..runs-1).", lower_bound=2)
flags.DEFINE_integer("steps", 1000, "Iterations per training.", lower_bound=1)
flags.DEFINE_integer("parallel", 2, "The --parallel to compare with --parallel=1.", lower_bound=2)
flags.DEFINE_enum("compare", "parallel", ["parallel", "warm_start"], "parallel: --parallel=1 "
                  "against --parallel=N; warm_start: --nowarm_start against --warm_start.")
FLAGS = flags.FLAGS


def study_text(runs, steps):
    base = os.path.join(REPO, "experiments", "mnist_mlp.flags")
    return (f'description = "--parallel timing: mnist_mlp.flags, {steps} steps, {runs} seeds"\n'
            f"base = {base!r}\nseeds = {list(range(runs))}\n\n"
            f"[settings]\nnum_steps = {steps}\neval_every = 0\n")


def time_study(study, root, extra):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gan.ablate", f"--study={study}", f"--root={root}",
                          *extra], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"gan.ablate {' '.join(extra)} failed:\n{out.stderr[-2000:]}")
    return wall


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as workdir:
        study = os.path.join(workdir, "parallel_timing.toml")
        with open(study, "w") as f:
            f.write(study_text(FLAGS.runs, FLAGS.steps))
        print(f"# {FLAGS.runs} runs of mnist_mlp.flags x {FLAGS.steps} steps, evaluation off; "
              f"{os.cpu_count()} cores", flush=True)
        if FLAGS.compare == "parallel":
            variants = ["--parallel=1", f"--parallel={FLAGS.parallel}"]
        else:
            variants = ["--nowarm_start", "--warm_start"]
        walls = []
        for i, variant in enumerate(variants):
            walls.append(time_study(study, os.path.join(workdir, f"v{i}"), [variant]))
            print(f"{variant}: {walls[-1]:.1f} s for the study "
                  f"({walls[-1] / FLAGS.runs:.1f} s per run)", flush=True)
    print(f"# {variants[1]} against {variants[0]}: {walls[0] / walls[1]:.2f}x the study's "
          "throughput")


if __name__ == "__main__":
    app.run(main)
