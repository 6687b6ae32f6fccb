"""What `gan.ablate --parallel=N` buys on this machine: the same small study run whole with
--parallel=1 (one training at a time, all cores each) and with --parallel=N (N at a time, each
capped to cores/N threads), in one run of this script; prints each wall time and the ratio.
With --compare=warm_start: the study with each training started cold (--nowarm_start, its own
python -m gan.train) against forked from the warm server (the default), both --parallel=1.
With --compare=steady, the performance target "a study's runs add up": the study as gan.ablate
runs it by default, evaluations included, against the sum of its runs' steady training, each at
the full machine: runs x steps over the steady rate of one 2,000-step mnist_mlp.flags job that
has the machine to itself (experiments/run_overhead.py's median rate). Target: at most 1.25x.

    python experiments/parallel_speedup.py                 # about 6 minutes on 2 cores
    python experiments/parallel_speedup.py --runs=4 --steps=1000 --parallel=2
    python experiments/parallel_speedup.py --compare=warm_start --runs=8 --steps=100
    python experiments/parallel_speedup.py --compare=steady --runs=4 --steps=2000

The study is mnist_mlp.flags (the studies' base) over --runs seeds, --steps iterations each,
evaluation off but with --compare=steady: what is timed is the runner and its trainings,
start-up included.
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
flags.DEFINE_enum("compare", "parallel", ["parallel", "warm_start", "steady"], "parallel: "
                  "--parallel=1 against --parallel=N; warm_start: --nowarm_start against "
                  "--warm_start; steady: the default study against its runs' steady training.")
FLAGS = flags.FLAGS


def study_text(runs, steps, evaluate=False):
    base = os.path.join(REPO, "experiments", "mnist_mlp.flags")
    return (f'description = "--parallel timing: mnist_mlp.flags, {steps} steps, {runs} seeds"\n'
            f"base = {base!r}\nseeds = {list(range(runs))}\n\n"
            f"[settings]\nnum_steps = {steps}\n" + ("" if evaluate else "eval_every = 0\n"))


def time_study(study, root, extra):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gan.ablate", f"--study={study}", f"--root={root}",
                          *extra], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"gan.ablate {' '.join(extra)} failed:\n{out.stderr[-2000:]}")
    # how many at a time, with how many threads
    print(f"  {out.stdout.splitlines()[0].replace(os.path.dirname(root), '<workdir>')}",
          flush=True)
    return wall


def steady_rate():
    """The median logged steps/s of a 2,000-step mnist_mlp.flags job alone on the machine."""
    sys.path.insert(0, os.path.join(REPO, "experiments"))
    import run_overhead
    _, _, rate, _ = run_overhead.profile(run_overhead.JOBS["trial"])
    return rate


def against_steady(study, workdir):
    rate = steady_rate()
    steady = FLAGS.runs * FLAGS.steps / rate
    print(f"steady training at the full machine: {rate:.1f} steps/s, {steady:.1f} s for the "
          f"study's {FLAGS.runs} x {FLAGS.steps} steps", flush=True)
    wall = time_study(study, os.path.join(workdir, "default"), [])
    print(f"# gan.ablate's default: {wall:.1f} s for the study, {wall / steady:.2f}x its runs' "
          "steady training (target <= 1.25x)")


def main(argv):
    del argv
    from gan import machine
    print(f"# {machine.describe()}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        study = os.path.join(workdir, "parallel_timing.toml")
        with open(study, "w") as f:
            f.write(study_text(FLAGS.runs, FLAGS.steps, evaluate=FLAGS.compare == "steady"))
        if FLAGS.compare == "steady":
            return against_steady(study, workdir)
        print(f"# {FLAGS.runs} runs of mnist_mlp.flags x {FLAGS.steps} steps, evaluation off; "
              f"{os.cpu_count()} cores", flush=True)
        if FLAGS.compare == "parallel":
            variants = ["--parallel=1", f"--parallel={FLAGS.parallel}"]
        else:
            variants = ["--nowarm_start", "--warm_start"]
        walls = []
        for i, variant in enumerate(variants):
            extra = [variant] + (["--parallel=1"] if FLAGS.compare == "warm_start" else [])
            walls.append(time_study(study, os.path.join(workdir, f"v{i}"), extra))
            print(f"{variant}: {walls[-1]:.1f} s for the study "
                  f"({walls[-1] / FLAGS.runs:.1f} s per run)", flush=True)
    print(f"# {variants[1]} against {variants[0]}: {walls[0] / walls[1]:.2f}x the study's "
          "throughput")


if __name__ == "__main__":
    app.run(main)
