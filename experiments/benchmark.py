"""Training-speed benchmark: gan's compiled step against the seed's Keras loop, in one run.

    python experiments/benchmark.py            # the full table (a few minutes)
    python experiments/benchmark.py --quick    # fewer repetitions
    python experiments/benchmark.py --compare "gan b32 (seed's split D steps)" \
        "gan b32 (joint D step)"                   # two configs in interleaved rounds: B/A

Each configuration runs in its own subprocess (so its peak resident memory is its own and no
thread pool is shared), warms up (compilation included), then times --repetitions runs of
--iterations iterations each and reports the median. Also measured in the same run: the machine's
float32 matrix-multiply peak (a large tf.matmul), against which achieved GFLOP/s are compared.

FLOPs per iteration are counted analytically (2 per multiply-add of every matmul; elementwise ops
ignored), for what the step must compute: D step = G forward + D forward/backward on real and fake
(weight gradients, and input gradients except for D's first layer); G step = G forward, D forward,
D backward to its input only, G backward (weights, inputs except G's first layer).
"""

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> settings; "d_update"/"d_fake_batchnorm" pick the seed's quirks or the joint step.
CONFIGS = {
    "gan b32 (joint D step)": dict(batch_size=32, d_update="joint", d_fake_batchnorm="train"),
    "gan b32 (seed's split D steps)": dict(batch_size=32, d_update="split",
                                           d_fake_batchnorm="inference"),
    "gan b64 (joint D step)": dict(batch_size=64, d_update="joint", d_fake_batchnorm="train"),
    "gan b256 (joint D step)": dict(batch_size=256, d_update="joint", d_fake_batchnorm="train"),
    "gan b32 (joint, no XLA)": dict(batch_size=32, d_update="joint", d_fake_batchnorm="train",
                                    jit_compile=False),
    # experiments/dcgan.flags at batch 64, with and without XLA: what --jit_compile=auto rests on.
    "dcgan w32 b64 (XLA)": dict(batch_size=64, flagfile="dcgan.flags", jit_compile=True),
    "dcgan w32 b64 (no XLA)": dict(batch_size=64, flagfile="dcgan.flags", jit_compile=False),
}
KERAS = "Keras seed loop b32 (train_on_batch)"
MATMULS = "b32 joint step's matmuls alone"


def row_batch_size(name):
    """The batch of a row: its own for the gan configs, the seed's 32 for the other rows."""
    return CONFIGS[name]["batch_size"] if name in CONFIGS else 32


def layer_sizes(config):
    """(G's layer widths, D's layer widths) of an MLP RunConfig, inputs and outputs included."""
    from gan import data
    image_size = math.prod(data.IMAGE_SHAPE)
    model = config.model
    return ([model.latent_dim, *model.g_hidden, image_size], [image_size, *model.d_hidden, 1])


def mlp_flops_per_iteration(config):
    g_sizes, d_sizes = layer_sizes(config)
    batch = config.schedule.batch_size

    def forward(sizes, n):
        return sum(2 * n * a * b for a, b in zip(sizes, sizes[1:]))

    def input_grads(sizes, n, skip_first):
        pairs = list(zip(sizes, sizes[1:]))[1 if skip_first else 0:]
        return sum(2 * n * a * b for a, b in pairs)

    g_fwd, d_fwd = forward(g_sizes, batch), forward(d_sizes, batch)
    d_step = g_fwd + 2 * forward(d_sizes, 2 * batch) + input_grads(d_sizes, 2 * batch, True)
    g_step = (g_fwd + d_fwd + input_grads(d_sizes, batch, False) + g_fwd
              + input_grads(g_sizes, batch, True))
    return d_step + g_step


def worker_matmul_peak(size=2048, repetitions=20):
    import tensorflow as tf
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    best = 0.0
    for jit in (False, True):  # the faster of TensorFlow's own kernel and XLA's
        matmul = tf.function(lambda x, y: tf.matmul(x, y)[0, 0], jit_compile=jit)
        calls = _time_runs(lambda n: float(matmul(a, b)), 1, repetitions)["iterations_per_sec"]
        best = max(best, 2 * size ** 3 * calls / 1e9)
    return {"gflops": best}


def worker_matmuls_only(config, iterations, repetitions):
    """Only the matmuls of one joint iteration (the FLOPs counted above), at the same shapes and
    in the same order, in one compiled loop: how fast this machine's XLA runs those shapes, a
    ceiling for the whole step, which also has activations, BatchNorm, losses, RNG, gather,
    updates and gradient norms."""
    import tensorflow as tf
    g_sizes, d_sizes = layer_sizes(config)
    g_weights = [tf.Variable(tf.random.normal([a, b]) * 0.01) for a, b in zip(g_sizes, g_sizes[1:])]
    d_weights = [tf.Variable(tf.random.normal([a, b]) * 0.01) for a, b in zip(d_sizes, d_sizes[1:])]

    def forward(weights, x):
        activations = [x]
        for w in weights:
            activations.append(tf.matmul(activations[-1], w))
        return activations

    def backward(weights, activations, grad, first_input_grad):
        weight_grads = []
        for i in reversed(range(len(weights))):
            weight_grads.insert(0, tf.matmul(activations[i], grad, transpose_a=True))
            if i > 0 or first_input_grad:
                grad = tf.matmul(grad, weights[i], transpose_b=True)
        return weight_grads, grad

    def iteration(z):
        fake = forward(g_weights, z)[-1]
        d_acts = forward(d_weights, tf.concat([fake, fake], 0))
        d_grads, _ = backward(d_weights, d_acts, d_acts[-1], False)
        for w, grad in zip(d_weights, d_grads):  # a dependency, so nothing is hoisted
            w.assign_sub(1e-6 * grad)
        g_acts = forward(g_weights, z)
        d_acts = forward(d_weights, g_acts[-1])
        _, image_grad = backward(d_weights, d_acts, d_acts[-1], True)
        g_grads, _ = backward(g_weights, g_acts, image_grad, False)
        for w, grad in zip(g_weights, g_grads):
            w.assign_sub(1e-6 * grad)

    @tf.function(jit_compile=True)
    def run(n):
        z = tf.random.normal([config.schedule.batch_size, config.model.latent_dim])
        for _ in tf.range(n):
            iteration(z)
        return g_weights[0][0, 0]

    return _time_runs(lambda n: float(run(tf.constant(n))), iterations, repetitions)


def _warm_up(run, iterations):
    for _ in range(2):  # compile, then one more warm run
        run(iterations)


def _time_runs(run, iterations, repetitions):
    _warm_up(run, iterations)
    rates = []
    for _ in range(repetitions):
        start = time.perf_counter()
        run(iterations)  # each call returns a fetched scalar, so it waits for all the work
        rates.append(iterations / (time.perf_counter() - start))
    return {"iterations_per_sec": statistics.median(rates), "all": rates}


def seed_mlp_config(batch_size=32, d_update="split", d_fake_batchnorm="inference"):
    """experiments/seed.flags as `gan.train` reads it, with the batch size and the D update
    overridden."""
    from gan import config
    return config.from_flagfile(os.path.join(REPO, "experiments", "seed.flags"),
                                batch_size=batch_size, d_update=d_update,
                                d_fake_batchnorm=d_fake_batchnorm)


def gan_runner(settings):
    """A function n -> None that runs n iterations of a CONFIGS entry and waits for them."""
    from gan import config as config_lib
    from gan import data, trainer
    if "flagfile" in settings:
        config = config_lib.from_flagfile(os.path.join(REPO, "experiments", settings["flagfile"]),
                                          batch_size=settings["batch_size"])
    else:
        config = seed_mlp_config(settings["batch_size"], settings["d_update"],
                                 settings["d_fake_batchnorm"])
    state = config_lib.make_state(config)
    runner = trainer.Trainer(state, config_lib.trainer_config(config),
                             data.load("mnist", "train").images,
                             jit_compile=settings.get("jit_compile", True))
    return lambda n: float(runner.run(n)["d_loss"])


def worker_gan(settings, iterations, repetitions):
    import tensorflow as tf
    result = _time_runs(gan_runner(settings), iterations, repetitions)
    result["tf_version"] = tf.__version__
    return result


def serve_timed_runs(name, iterations):
    """Worker of `interleaved`: warms up, then times one run per line read from stdin."""
    run = gan_runner(CONFIGS[name])
    _warm_up(run, iterations)
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        run(iterations)
        print(iterations / (time.perf_counter() - start), flush=True)


def interleaved(name_a, name_b, args):
    """Times two configs in turns, each in its own warm process: both see the same moments of a
    noisy machine, so the median of the per-round ratios B/A is steadier than two separate rows."""
    workers = [subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--serve={name}",
                                 f"--iterations={args.iterations}"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=_worker_env(), cwd=REPO)
               for name in (name_a, name_b)]
    for worker in workers:
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a worker of {name_a!r} / {name_b!r} failed to start")
    rates = ([], [])
    for round_index in range(args.rounds):
        for i in ((0, 1) if round_index % 2 == 0 else (1, 0)):  # alternate who goes first
            workers[i].stdin.write("go\n")
            workers[i].stdin.flush()
            rates[i].append(float(workers[i].stdout.readline()))
    for worker in workers:
        worker.stdin.close()
        worker.wait()
    ratios = [b / a for a, b in zip(*rates)]
    print(f"# A = {name_a}: median {statistics.median(rates[0]):.1f} iter/s")
    print(f"# B = {name_b}: median {statistics.median(rates[1]):.1f} iter/s")
    print(f"# B/A, median of {args.rounds} interleaved rounds of {args.iterations} iterations: "
          f"{statistics.median(ratios):.3f}  (rounds: {' '.join(f'{r:.2f}' for r in ratios)})")


def worker_keras(iterations, repetitions):
    rates = []
    for _ in range(repetitions):
        out = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "keras_seed.py"),
                              f"--iterations={iterations}"], capture_output=True, text=True,
                             check=True, cwd=REPO)
        rates.append(json.loads(out.stdout.strip().splitlines()[-1])["iterations_per_sec"])
    return {"iterations_per_sec": statistics.median(rates), "all": rates}


def peak_rss_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB


def run_worker(args):
    if args.worker == "peak":
        result = worker_matmul_peak()
    elif args.worker == MATMULS:
        result = worker_matmuls_only(seed_mlp_config(d_update="joint", d_fake_batchnorm="train"),
                                     args.iterations, args.repetitions)
    elif args.worker == KERAS:
        result = worker_keras(args.keras_iterations, args.keras_repetitions)
    else:
        result = worker_gan(CONFIGS[args.worker], args.iterations, args.repetitions)
    result["peak_rss_mib"] = peak_rss_mib()  # before the FLOP count's imports, for Keras' sake
    if args.worker != "peak":
        # The analytic count covers the MLP only; a convolutional row reports none.
        result["gflop_per_iteration"] = float("nan") if "flagfile" in CONFIGS.get(
            args.worker, {}) else mlp_flops_per_iteration(
                seed_mlp_config(row_batch_size(args.worker))) / 1e9
    print(json.dumps(result))


def _worker_env():
    """The environment of a worker subprocess: quiet TensorFlow, this checkout's gan."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)


def spawn(name, args):
    cmd = [sys.executable, os.path.abspath(__file__), f"--worker={name}",
           f"--iterations={args.iterations}", f"--repetitions={args.repetitions}",
           f"--keras_iterations={args.keras_iterations}",
           f"--keras_repetitions={args.keras_repetitions}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env(), cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2), as in the gan.* programs."""

    def error(self, message):
        print(f"benchmark.py: error: {message}", file=sys.stderr)
        sys.exit(2)


def argument_errors(args):
    # isinstance: Python 3.11's argparse turns "--iterations=--" into [] without calling int.
    errors = [f"--{name}={getattr(args, name)}: expected an integer >= 1"
              for name in ("iterations", "repetitions", "keras_iterations", "keras_repetitions",
                           "rounds")
              if not isinstance(getattr(args, name), int) or getattr(args, name) < 1]
    unknown = [name for name in args.compare or () if name not in CONFIGS]
    if unknown:
        errors.append(f"--compare: unknown config {unknown[0]!r}; expected one of: "
                      + "; ".join(CONFIGS))
    if args.only is not None and not any(args.only in n for n in list(CONFIGS) + [MATMULS, KERAS]):
        errors.append(f"--only={args.only}: matches no configuration")
    return errors


def main():
    parser = OneLineParser(description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=500, help="Iterations per timed run.")
    parser.add_argument("--repetitions", type=int, default=5, help="Timed runs per config.")
    parser.add_argument("--keras_iterations", type=int, default=200, help="Keras timed iterations.")
    parser.add_argument("--keras_repetitions", type=int, default=3, help="Keras timed runs.")
    parser.add_argument("--quick", action="store_true", help="Fewer iterations and repetitions.")
    parser.add_argument("--only", default=None, help="Run only configs whose name contains this.")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                        help="Instead of the table: time two gan configs (names as in the "
                        "table) in interleaved rounds and print the median ratio B/A.")
    parser.add_argument("--rounds", type=int, default=12, help="Rounds for --compare.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    errors = argument_errors(args)
    if errors:
        parser.error("; ".join(errors))
    if args.worker:
        return run_worker(args)
    if args.serve:
        return serve_timed_runs(args.serve, args.iterations)
    if args.compare:
        return interleaved(*args.compare, args)
    if args.quick:
        args.iterations, args.repetitions = 200, 3
        args.keras_iterations, args.keras_repetitions = 100, 1

    print(f"# {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    peak = spawn("peak", args)["gflops"]
    print(f"# float32 matmul peak (2048^3 tf.matmul, median): {peak:.1f} GFLOP/s")
    header = (f"| {'configuration':<38} | {'iter/s':>8} | {'images/s':>9} | {'GFLOP/iter':>10} | "
              f"{'GFLOP/s':>8} | {'% peak':>6} | {'peak RSS MiB':>12} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    rates = {}
    names = [n for n in list(CONFIGS) + [MATMULS, KERAS] if not args.only or args.only in n]
    for name in names:
        result = spawn(name, args)
        batch = row_batch_size(name)
        rate = result["iterations_per_sec"]
        rates[name] = rate
        gflop = result["gflop_per_iteration"]
        print(f"| {name:<38} | {rate:>8.1f} | {rate * batch:>9.0f} | {gflop:>10.3f} | "
              f"{rate * gflop:>8.1f} | {100 * rate * gflop / peak:>5.1f}% | "
              f"{result['peak_rss_mib']:>12.0f} |", flush=True)
    ours, seed_split = "gan b32 (joint D step)", "gan b32 (seed's split D steps)"
    if KERAS in rates:
        for name in (ours, seed_split):
            if name in rates:
                print(f"# {name} / Keras seed loop: {rates[name] / rates[KERAS]:.1f}x")


if __name__ == "__main__":
    main()
