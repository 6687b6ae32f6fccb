"""Where the whole seed job's time and memory go:
`python -m gan.train --flagfile=experiments/seed.flags` (10,000 iterations, 5 evaluations of 10,000
samples, sample grids, summaries, checkpoints) against its training alone, in one run on one
machine.

    python experiments/profile_seed_job.py            # about 4 minutes on 2 cores
    python experiments/profile_seed_job.py --xla_cache_pairs=2   # cold and warm XLA cache
    python experiments/profile_seed_job.py --overlap_rounds=3    # evaluating beside training

Prints, in order:
  1. the whole job, and the same job with --eval_every=0, each in its own process: wall time,
     peak resident memory (getrusage of the child), and the time the job itself spent in the
     trainer's compiled calls, so that a ratio within one job is not thrown off by the machine's
     speed drifting between runs;
  2. in this process, stage by stage: importing TensorFlow and gan, loading MNIST, building the
     state and compiling the loop, the 10,000 training iterations alone (100 compiled calls of 100,
     nothing written), the evaluator's set-up (reference features, cached on disk after the first
     run), then one evaluation split into its parts; after each stage, the time it took and the
     process's peak resident memory so far (a stage that raises the peak shows it).
The target of the performance issue: whole job <= 1.3 x training alone, peak RSS <= 1.3 GB.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's gan, installed or not
SEED_FLAGS = os.path.join(REPO, "experiments", "seed.flags")


def peak_mib(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


# Run in the child: gan.train, with the time spent in the trainer's compiled calls added up
# (TensorFlow runs them synchronously on CPU, so a call's duration is its iterations' time).
CHILD = """
import resource, runpy, sys, time
from gan import cli, loop
cli.exit_after_success = lambda: None  # this child reports after gan.train's main returns
run, seconds = loop.Loop.run, [0.0]
def timed_run(self, iterations):
    start = time.perf_counter()
    try:
        return run(self, iterations)
    finally:
        seconds[0] += time.perf_counter() - start
loop.Loop.run = timed_run
sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_module("gan.train", run_name="__main__")
except SystemExit as e:
    code = e.code or 0
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print("TRAINING_S", seconds[0])
sys.exit(code)
"""


def child_job(extra_flags):
    """(wall seconds, peak RSS MiB, seconds in the training loop's calls) of a gan.train run in a
    fresh process."""
    with tempfile.TemporaryDirectory() as logdir:
        command = [sys.executable, "-c", CHILD, "gan.train", f"--flagfile={SEED_FLAGS}",
                   f"--logdir={logdir}", *extra_flags]
        start = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"gan.train failed:\n{out.stderr[-3000:]}")
    reported = dict(line.split() for line in out.stdout.splitlines()
                    if line.startswith(("PEAK_KIB", "TRAINING_S")))
    return wall, int(reported["PEAK_KIB"]) / 1024, float(reported["TRAINING_S"])


class Stages:
    def __init__(self):
        self.last = time.perf_counter()
        self.times = {}

    def done(self, name):
        now = time.perf_counter()
        self.times[name] = now - self.last
        print(f"| {name:<52} | {now - self.last:>8.2f} | {peak_mib():>9.0f} |", flush=True)
        self.last = now


def seed_trainer(run, pixels):
    """(state, trainer) for the seed's config `run`, as gan.train builds them."""
    from gan import build
    from gan import step as step_lib
    state = build.make_state(run)
    return state, step_lib.Trainer(state, run, pixels,
                                   jit_compile=build.jit_compile(run))


def in_process():
    print("| stage (this process)                                 |     s    | peak MiB  |")
    print("|------------------------------------------------------|----------|-----------|")
    stages = Stages()
    from gan import classifier, config, data, metrics  # imports TF
    from gan import evaluator as evaluator_lib
    from gan import run as run_lib
    stages.done("import TensorFlow and gan")
    run = config.from_flagfile(SEED_FLAGS)
    pixels = data.load("mnist", "train").pixels  # what gan.train hands the trainer
    stages.done("load MNIST")
    state, runner = seed_trainer(run, pixels)
    float(runner.run(1)["d_loss"])
    run_lib.return_freed_memory()  # as gan.train does after its first compiled call
    stages.done("build the state, compile the loop, 1 iteration")
    for _ in range(run.schedule.num_steps // run.runtime.steps_per_loop):
        float(runner.run(run.runtime.steps_per_loop)["d_loss"])
    stages.done(f"{run.schedule.num_steps} training iterations alone")
    training = stages.times[f"{run.schedule.num_steps} training iterations alone"]
    evaluator = evaluator_lib.Evaluator(run.data.dataset, run.output.eval_num_samples)
    stages.done("evaluator set-up (reference features and statistics)")
    samples = evaluator_lib.generate(state.generator, run.output.eval_num_samples)
    stages.done("evaluation: generate 10,000 samples (compiles once)")
    samples = evaluator_lib.generate(state.generator, run.output.eval_num_samples,
                                     sampler=evaluator_lib.compile_sampler(state.generator))
    stages.done("evaluation: generate 10,000 samples again")
    features, probs = classifier.predict(evaluator.classifier, samples)
    stages.done("evaluation: classifier features")
    mu, sigma = metrics.gaussian_statistics(features)
    metrics.frechet_distance(evaluator.reference_mu, evaluator.reference_sigma, mu, sigma)
    stages.done("evaluation: FID")
    metrics.kid(evaluator.reference_subset, features)
    stages.done("evaluation: KID (100 subsets of 1,000)")
    metrics.precision_recall(evaluator.reference_subset, features)
    stages.done("evaluation: precision and recall (k = 3)")
    metrics.classifier_score(probs)
    metrics.class_coverage(probs)
    stages.done("evaluation: score and coverage")
    evaluator.evaluate_generator(state.generator)
    stages.done("one whole evaluation, as training runs it")
    return training


def job_line(name, wall, peak, training):
    return (f"{name}: whole job {wall:.1f} s, {training:.1f} s in the trainer's calls, "
            f"{wall / training:.2f}x, {wall - training:.1f} s beyond training, peak {peak:.0f} MiB")


def compare_xla_cache(pairs):
    """The whole job with an empty XLA cache, then again with the entry the first run wrote."""
    with tempfile.TemporaryDirectory() as parent:
        for _ in range(pairs):
            cache = os.path.join(parent, "xla")
            shutil.rmtree(cache, ignore_errors=True)
            for name in ("cold (empty cache)", "warm (second run)"):
                print(job_line(name, *child_job([f"--xla_cache_dir={cache}"])), flush=True)


def compare_overlap(rounds, iterations=2000, num_samples=None):
    """Whether evaluating beside training saves time: `iterations` training iterations and then
    one evaluation, against the same evaluation done in a thread while the next `iterations`
    train (its samples drawn first, at its step, as a background evaluation would have to).
    `num_samples`: the evaluation's size (default: the seed's, 10,000). Returns, a round each,
    (serial seconds, overlapped seconds, serial metrics, overlapped metrics), and the step the
    state reached."""
    import threading

    from gan import config, data
    from gan import evaluator as evaluator_lib
    run = config.from_flagfile(SEED_FLAGS)
    state, runner = seed_trainer(run, data.load("mnist", "train").pixels)
    chunk = min(iterations, run.runtime.steps_per_loop)
    float(runner.run(chunk)["d_loss"])  # compiled before any timing
    evaluator = evaluator_lib.Evaluator(run.data.dataset,
                                        num_samples or run.output.eval_num_samples)
    sampler = evaluator_lib.compile_sampler(state.generator)

    def draw():
        return evaluator_lib.generate(state.generator, evaluator.num_samples, sampler=sampler)

    evaluator.evaluate_images(draw())  # the reference's share and every trace, once

    def train(count):
        for _ in range(count // chunk):
            float(runner.run(chunk)["d_loss"])

    rows = []
    for _ in range(rounds):
        start = time.perf_counter()
        train(iterations)
        trained = time.perf_counter() - start
        serial_metrics = evaluator.evaluate_images(draw())
        serial = time.perf_counter() - start
        print(f"one after the other: {trained:.2f} s training, then {serial - trained:.2f} s "
              f"evaluating: {serial:.2f} s", flush=True)
        start = time.perf_counter()
        samples = draw()
        evaluated = []

        def evaluate():
            evaluated.append(evaluator.evaluate_images(samples))
            evaluated.append(time.perf_counter() - start)

        thread = threading.Thread(target=evaluate)
        thread.start()
        train(iterations)
        trained = time.perf_counter() - start
        thread.join()
        overlapped = time.perf_counter() - start
        print(f"overlapped: {trained:.2f} s training, the evaluation done after "
              f"{evaluated[1]:.2f} s: {overlapped:.2f} s", flush=True)
        rows.append((serial, overlapped, serial_metrics, evaluated[0]))
    return rows, int(state.step.numpy())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xla_cache_pairs", type=int, default=0,
                        help="Instead of the profile: this many pairs of whole jobs, the first "
                        "with an empty --xla_cache_dir, the second with what the first left.")
    parser.add_argument("--overlap_rounds", type=int, default=0,
                        help="Instead of the profile: this many rounds of 2,000 training "
                        "iterations and an evaluation, one after the other and then overlapped "
                        "(the evaluation in a thread while training goes on), in this process.")
    args = parser.parse_args()
    if args.overlap_rounds:
        compare_overlap(args.overlap_rounds)
        return
    if args.xla_cache_pairs:
        compare_xla_cache(args.xla_cache_pairs)
        return
    # Children without the cache: the profile is of a first run, compile included.
    whole, whole_peak, whole_training = child_job(["--xla_cache_dir="])
    print(f"# whole seed job (5 evaluations): {whole:.1f} s wall, peak RSS {whole_peak:.0f} MiB; "
          f"{whole_training:.1f} s of it in the training loop's calls (first compile "
          f"included): {whole / whole_training:.2f}x")
    no_eval, no_eval_peak, no_eval_training = child_job(["--eval_every=0", "--xla_cache_dir="])
    print(f"# the same with --eval_every=0: {no_eval:.1f} s wall, peak RSS {no_eval_peak:.0f} "
          f"MiB; {no_eval_training:.1f} s in the training loop's calls: "
          f"{no_eval / no_eval_training:.2f}x")
    training = in_process()
    print(f"# whole job / training alone: {whole / training:.2f}x "
          f"(target <= 1.3x); with --eval_every=0: {no_eval / training:.2f}x")
    print("# (the ratios within one job are the steadier ones: this machine's speed can drift "
          "between the three runs above)")


if __name__ == "__main__":
    main()
