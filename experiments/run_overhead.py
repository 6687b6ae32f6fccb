"""A whole run against its steady training, as the performance target counts them:

    python experiments/run_overhead.py                  # seed.flags, then a 2,000-step trial
    python experiments/run_overhead.py --jobs=trial --repeats=3

Each job is `python -m gan.train` in its own process, as a user runs it, in a fresh logdir. Its
wall time is from launch to exit. Its steady training is num_steps over the median logged rate
(perf/steps_per_sec) of the log intervals with no evaluation, no checkpoint and no compile in
them. The excess is then split by the job's own console lines, each stamped as it arrives:

  start-up      launch to the "generator: ..." line (imports, data, building the state)
  first call    the first log interval beyond its steps at the steady rate (tracing, compiling
                or loading the compiled loop)
  evaluations   each interval an evaluation falls in, beyond its steps at the steady rate
  checkpoints   the same for the intervals with only a checkpoint
  the rest      every other interval's excess (sample grids, summaries, the machine's drift)
  exit          the "Done" line to the process's end

The target: wall <= 1.3 x steady training, for seed.flags and for a 2,000-step mnist_mlp.flags
trial with one evaluation of 10,000 samples. Ratios are from one job on one machine; print the
CPU model beside them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's gan, installed or not

JOBS = {
    "seed": ["--flagfile=experiments/seed.flags"],
    "trial": ["--flagfile=experiments/mnist_mlp.flags", "--num_steps=2000"],
}


def stamped_run(flags, logdir):
    """(wall seconds, [(seconds since launch, console line)]) of one gan.train job."""
    command = [sys.executable, "-m", "gan.train", *flags, f"--logdir={logdir}"]
    start = time.perf_counter()
    lines = []
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")) as child:
        for line in child.stdout:
            lines.append((time.perf_counter() - start, line.rstrip()))
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError("gan.train failed:\n" + "\n".join(line for _, line in lines[-30:]))
    return wall, lines


def first_time(lines, prefix):
    return next(t for t, line in lines if line.startswith(prefix))


def profile(flags):
    """The job's wall time, steady training and the excess split as the docstring says."""
    from gan import config, events
    run = config.from_flagfile(os.path.join(REPO, flags[0].split("=", 1)[1]))
    output, num_steps = run.output, int(flags[1].split("=")[1]) if len(flags) > 1 else None
    num_steps = num_steps or run.schedule.num_steps
    with tempfile.TemporaryDirectory() as logdir:
        wall, lines = stamped_run(flags, logdir)
        rates = events.read_scalars(logdir, "perf/steps_per_sec")["perf/steps_per_sec"]
    log_every = output.log_every

    def holds(start, every):
        return every > 0 and start > 0 and start % every == 0

    kinds = {}  # interval's end step -> what it holds beyond training
    for end, _ in rates:
        start = end - log_every
        kinds[end] = ("first call" if start == 0 else
                      "evaluations" if holds(start, output.eval_every) else
                      "checkpoints" if holds(start, output.checkpoint_every) else "the rest")
    steady_rate = statistics.median(rate for end, rate in rates if kinds[end] == "the rest")
    steady = num_steps / steady_rate
    parts = {"start-up": first_time(lines, "generator:")}
    for end, rate in rates:
        excess = log_every / rate - log_every / steady_rate
        parts[kinds[end]] = parts.get(kinds[end], 0.0) + excess
    done = first_time(lines, "Done at step")
    last_log = max(t for t, line in lines if line.startswith("step "))
    parts["after the last log"] = done - last_log  # the last step's grid, evaluation, checkpoint
    parts["exit"] = wall - done
    return wall, steady, steady_rate, parts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="seed,trial",
                        help=f"Comma-separated, from {sorted(JOBS)}.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs of each job, in turn.")
    args = parser.parse_args()
    from gan import machine
    print(f"# {machine.describe()}", flush=True)
    for _ in range(args.repeats):
        for name in args.jobs.split(","):
            wall, steady, rate, parts = profile(JOBS[name])
            print(f"{name}: {wall:.1f} s wall, steady training {steady:.1f} s "
                  f"({rate:.1f} steps/s median): {wall / steady:.2f}x (target <= 1.3x)",
                  flush=True)
            accounted = steady + sum(parts.values())
            for part, seconds in parts.items():
                print(f"  {part:<20} {seconds:6.1f} s", flush=True)
            print(f"  {'(unaccounted)':<20} {wall - accounted:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
