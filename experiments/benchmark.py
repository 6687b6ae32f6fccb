"""Training-speed benchmark: gan's compiled step against the seed's Keras loop and a PyTorch
eager implementation of the same step, in one run.

    python experiments/benchmark.py            # the full table (a few minutes)
    python experiments/benchmark.py --quick    # fewer iterations and rounds
    python experiments/benchmark.py --compare "gan b32 (seed's split D steps)" \
        "gan b32 (joint D step)"                   # two configs in interleaved rounds: B/A
    python experiments/benchmark.py --compare "b32 joint step's matmuls alone" \
        "gan b32 (joint D step)"                   # the step against its own matmuls
    git worktree add ../gan-before HEAD~1 && python experiments/benchmark.py \
        --compare "gan b32 (joint D step)" "gan b32 (joint D step)" \
        --checkouts ../gan-before .                # one config, before and after a change

Every row comes from interleaved rounds: each configuration is a warm process of its own (its
peak resident memory is its own and no thread pool is shared), compiled before the first round;
a round times every row once, in an order that rotates from round to round, and a row's figure
is the median over --rounds rounds, shown with its range. Rows timed minutes apart on a drifting
machine would mislead; timed in turns, every row sees the same minutes, and each ratio line is
the median of its per-round ratios. Also measured in the same run: the machine's float32
matrix-multiply peak (a large tf.matmul), against which achieved GFLOP/s are compared.

FLOPs per iteration are counted analytically by `gan.flops` (2 per multiply-add of every matmul
and convolution; elementwise ops ignored), for what the step must compute: D step = G forward + D
forward/backward on real and fake (weight gradients, and input gradients except for D's first
layer); G step = G forward, D forward, D backward to its input only, G backward (weights, inputs
except G's first layer). The multiply-adds of each layer are read from the networks themselves
(`gan.flops.layer_macs`); a study's compute axis counts the same way.

The PyTorch rows (experiments/torch_seed.py) run when torch is importable, and the Keras row
(experiments/keras_seed.py) when Keras is; each is skipped with one line otherwise. Both are
yardsticks here, never dependencies of gan/.
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
sys.path.insert(0, REPO)  # this checkout's gan, installed or not


def flops_per_iteration(config):
    """gan.flops' count (the benchmark's FLOPs are a study's); imported when needed, so that a
    bad argument is refused before TensorFlow loads."""
    from gan import flops
    return flops.flops_per_iteration(config)


# Adam at the common GAN settings (what experiments/torch_seed.py --optimizer=adam runs).
ADAM = dict(g_optimizer="adam", d_optimizer="adam", g_learning_rate=2e-4, d_learning_rate=2e-4)



def joint(batch_size, jit_compile=True, **overrides):
    """The settings of a row of the MLP's joint step: its batch, XLA or not, other flags."""
    return dict(batch_size=batch_size, d_update="joint", d_fake_batchnorm="train",
                jit_compile=jit_compile, overrides=overrides)


BF16, FP16 = dict(mixed_precision="bfloat16"), dict(mixed_precision="float16")

# The row the performance targets are stated against.
OURS = "gan b32 (joint D step)"

# name -> settings; "d_update"/"d_fake_batchnorm" pick the seed's quirks or the joint step;
# "overrides": other settings, by flag name.
CONFIGS = {
    OURS: joint(32),
    "gan b32 (seed's split D steps)": dict(batch_size=32, d_update="split",
                                           d_fake_batchnorm="inference"),
    "gan b64 (joint D step)": joint(64),
    "gan b256 (joint D step)": joint(256),
    "gan b32 (joint, no XLA)": joint(32, jit_compile=False),
    "gan b32 (joint, Adam)": joint(32, **ADAM),
    # --mixed_precision, under XLA and under TensorFlow's own (oneDNN) kernels: on a CPU with bf16
    # matrix units only the latter may use them.
    "gan b32 (joint, bfloat16)": joint(32, **BF16),
    "gan b32 (joint, bfloat16, no XLA)": joint(32, jit_compile=False, **BF16),
    "gan b32 (joint, float16)": joint(32, **FP16),
    "gan b256 (joint, no XLA)": joint(256, jit_compile=False),
    "gan b256 (joint, bfloat16)": joint(256, **BF16),
    "gan b256 (joint, bfloat16, no XLA)": joint(256, jit_compile=False, **BF16),
    # experiments/dcgan.flags at batch 64, with and without XLA: what --jit_compile=auto rests on.
    # Timed over 5 iterations per run: under XLA one takes seconds on a CPU.
    "dcgan w32 b64 (XLA)": dict(batch_size=64, flagfile="dcgan.flags", jit_compile=True,
                                iterations=5),
    "dcgan w32 b64 (no XLA)": dict(batch_size=64, flagfile="dcgan.flags", jit_compile=False,
                                   iterations=20),
}
DCGAN = "dcgan w32 b64 (no XLA)"
KERAS = "Keras seed loop b32 (train_on_batch)"
MATMULS = "b32 joint step's matmuls alone"
# name -> (the gan row of the same networks and step, torch_seed.py's arguments).
TORCH = {"PyTorch eager b32 joint (SGD)": (OURS, ["--optimizer=sgd"]),
         "PyTorch eager b32 joint (Adam)": ("gan b32 (joint, Adam)", ["--optimizer=adam"]),
         "PyTorch eager dcgan w32 b64 (Adam)": (DCGAN, ["--architecture=dcgan", "--width=32",
                                                        "--batch_size=64", "--optimizer=adam"])}
# A yardstick script's exit code without its library (keras_seed.py, torch_seed.py).
SKIPPED_EXIT_CODE = 3
HLO = "hlo"  # worker: the HLO instruction count of one b32 joint iteration
PEAKS = {"peak": "float32", "peak_bfloat16": "bfloat16"}  # worker -> its large matmul's dtype


def row_settings(name):
    """The CONFIGS entry of a row's networks and step: its own, or its gan twin's (PyTorch), or
    OURS (the matmuls row, the Keras loop)."""
    return CONFIGS.get(name) or CONFIGS[TORCH[name][0] if name in TORCH else OURS]


def row_batch_size(name):
    return row_settings(name)["batch_size"]


def layer_sizes(config):
    """(G's layer widths, D's layer widths) of an MLP RunConfig, inputs and outputs included."""
    from gan import data
    image_size = math.prod(data.IMAGE_SHAPE)
    model = config.model
    return ([model.latent_dim, *model.g_hidden, image_size], [image_size, *model.d_hidden, 1])


def worker_matmul_peak(dtype="float32", size=2048, repetitions=20):
    """GFLOP/s of a large matmul in dtype, with TensorFlow's own (oneDNN) kernel and with XLA's;
    "gflops" is the faster. In bfloat16 this says what the CPU's bf16 units give the kernels at
    all, before any question of our step's overheads."""
    import tensorflow as tf
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    by_kernel = {}
    for kernel, jit in (("oneDNN", False), ("XLA", True)):
        matmul = tf.function(lambda x, y: tf.cast(tf.matmul(x, y)[0, 0], tf.float32),
                             jit_compile=jit)
        calls = _time_runs(lambda n: float(matmul(a, b)), 1, repetitions)["iterations_per_sec"]
        by_kernel[kernel] = 2 * size ** 3 * calls / 1e9
    return {"gflops": max(by_kernel.values()), "by_kernel": by_kernel}


def matmuls_only_loop(config):
    """A compiled function n -> a float32 scalar that runs only the matmuls of n joint iterations
    (the FLOPs counted above), at the same shapes and in the same order, in one compiled loop:
    how fast this machine's XLA runs those shapes, a ceiling for the whole step, which also has
    activations, BatchNorm, losses, RNG, gather, updates and gradient norms.

    The D step and the G step each get their own noise, as in the step. With one `z` for both,
    G's two forward passes would have the same operands (G's weights change only after the G
    step), and XLA would merge them: the row would skip the G step's forward pass and be a
    ceiling the step cannot reach. tests/test_benchmark.py checks that it compiles the step's
    own dots."""
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

    def iteration(d_noise, g_noise):
        fake = forward(g_weights, d_noise)[-1]
        d_acts = forward(d_weights, tf.concat([fake, fake], 0))
        d_grads, _ = backward(d_weights, d_acts, d_acts[-1], False)
        for w, grad in zip(d_weights, d_grads):  # a dependency, so nothing is hoisted
            w.assign_sub(1e-6 * grad)
        g_acts = forward(g_weights, g_noise)
        d_acts = forward(d_weights, g_acts[-1])
        _, image_grad = backward(d_weights, d_acts, d_acts[-1], True)
        g_grads, _ = backward(g_weights, g_acts, image_grad, False)
        for w, grad in zip(g_weights, g_grads):
            w.assign_sub(1e-6 * grad)

    @tf.function(jit_compile=True)
    def run(n):
        noise_shape = [config.schedule.batch_size, config.model.latent_dim]
        d_noise, g_noise = tf.random.normal(noise_shape), tf.random.normal(noise_shape)
        for _ in tf.range(n):
            iteration(d_noise, g_noise)
        return g_weights[0][0, 0]

    return run


def matmuls_only_runner(config):
    """A function n -> float that runs matmuls_only_loop's n iterations and, by reading its
    result, waits for them."""
    import tensorflow as tf
    run = matmuls_only_loop(config)
    return lambda n: float(run(tf.constant(n)))


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


def row_config(settings):
    """The RunConfig of a CONFIGS entry."""
    from gan import config as config_lib
    if "flagfile" in settings:
        config = config_lib.from_flagfile(os.path.join(REPO, "experiments", settings["flagfile"]),
                                          batch_size=settings["batch_size"])
    else:
        config = seed_mlp_config(settings["batch_size"], settings["d_update"],
                                 settings["d_fake_batchnorm"])
    return config.replace(**settings.get("overrides", {})).validate()


def make_trainer(settings):
    from gan import build, data
    from gan import step as step_lib
    config = row_config(settings)
    state = build.make_state(config)
    return step_lib.Trainer(state, config,
                            data.load("mnist", "train").pixels,  # as gan.train does
                            jit_compile=settings.get("jit_compile", True))


def optimized_hlo(runner):
    """XLA's optimized HLO text of one iteration of a Trainer."""
    import tensorflow as tf
    iteration = tf.function(runner._iteration, jit_compile=True, autograph=False)
    return iteration.experimental_get_compiler_ir(runner.images)(stage="optimized_hlo")


def hlo_instructions(settings):
    """How many instructions XLA's optimized HLO of one iteration of a CONFIGS entry has."""
    hlo = optimized_hlo(make_trainer(settings))
    return sum(1 for line in hlo.splitlines() if " = " in line and line.lstrip().startswith(
        ("%", "ROOT ")))


def gan_runner(settings):
    """A function n -> None that runs n iterations of a CONFIGS entry and waits for them."""
    runner = make_trainer(settings)
    return lambda n: float(runner.run(n)["d_loss"])


def timed_runner(name):
    """A run(n) function for a gan config or for the "matmuls alone" row (the matmuls of the row
    the targets are stated against)."""
    if name == MATMULS:
        return matmuls_only_runner(row_config(CONFIGS[OURS]))
    return gan_runner(CONFIGS[name])


def serve_timed_runs(name, iterations):
    """Worker of `interleaved_rates` and of the table: warms up, prints "ready", then times one
    run per line read from stdin; when stdin closes, prints its peak resident memory."""
    run = timed_runner(name)
    _warm_up(run, iterations)
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        run(iterations)
        print(iterations / (time.perf_counter() - start), flush=True)
    print(json.dumps({"peak_rss_mib": peak_rss_mib()}), flush=True)


def row_iterations(name, iterations):
    """A row's iterations per timed run: --iterations at batch 32, fewer for larger batches (the
    same images per run, so every row's run takes seconds), and a row's own cap (DCGAN)."""
    scaled = max(5, iterations * 32 // row_batch_size(name))
    return min(scaled, row_settings(name).get("iterations", scaled))


def start_server(name, iterations, checkout=REPO):
    worker = subprocess.Popen([sys.executable,
                               os.path.join(checkout, "experiments", "benchmark.py"),
                               f"--serve={name}", f"--iterations={iterations}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=_worker_env(checkout), cwd=checkout)
    if worker.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the worker of {name!r} failed to start")
    return worker


def timed_round(worker):
    worker.stdin.write("go\n")
    worker.stdin.flush()
    return float(worker.stdout.readline())


def stop_server(worker):
    """Closes a server's stdin; returns the peak RSS (MiB) it reports before exiting."""
    worker.stdin.close()
    last = worker.stdout.read().strip().splitlines()
    worker.wait()
    return json.loads(last[-1])["peak_rss_mib"] if last else float("nan")


def interleaved_rates(name_a, name_b, rounds, iterations, checkouts=(REPO, REPO)):
    """Times two configs in turns, each in its own warm process: both see the same moments of a
    noisy machine, so the median of the per-round ratios B/A is steadier than two separate rows.
    `checkouts`: where A and B run from. Returns (A's iterations/s, B's), a round each."""
    workers = [start_server(name, iterations, checkout)
               for name, checkout in zip((name_a, name_b), checkouts)]
    rates = ([], [])
    for round_index in range(rounds):
        for i in ((0, 1) if round_index % 2 == 0 else (1, 0)):  # alternate who goes first
            rates[i].append(timed_round(workers[i]))
    for worker in workers:
        stop_server(worker)
    return rates


def interleaved(name_a, name_b, args):
    """--compare: interleaved_rates of A and B, printed. With --checkouts, A runs from the first
    checkout and B from the second: the same config before and after a change."""
    checkouts = [os.path.abspath(c) for c in args.checkouts or (REPO, REPO)]
    rates = interleaved_rates(name_a, name_b, args.rounds, args.iterations, checkouts)
    ratios = [b / a for a, b in zip(*rates)]
    where = [f" ({checkout})" if args.checkouts else "" for checkout in checkouts]
    print(f"# A = {name_a}{where[0]}: median {statistics.median(rates[0]):.1f} iter/s")
    print(f"# B = {name_b}{where[1]}: median {statistics.median(rates[1]):.1f} iter/s")
    print(f"# B/A, median of {args.rounds} interleaved rounds of {args.iterations} iterations: "
          f"{statistics.median(ratios):.3f}  (rounds: {' '.join(f'{r:.2f}' for r in ratios)})")


def worker_script(script, iterations, *script_args):
    """The iterations/s of one run of a yardstick script (keras_seed.py, torch_seed.py), or
    {"skipped": its one line} when it exits with SKIPPED_EXIT_CODE, as torch_seed.py does
    without torch."""
    out = subprocess.run([sys.executable, os.path.join(REPO, "experiments", script),
                          f"--iterations={iterations}", *script_args], capture_output=True,
                         text=True, cwd=REPO)
    if out.returncode == SKIPPED_EXIT_CODE:
        return {"skipped": out.stderr.strip().splitlines()[-1]}
    if out.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{out.stderr[-3000:]}")
    return {"iterations_per_sec":
            json.loads(out.stdout.strip().splitlines()[-1])["iterations_per_sec"]}


def peak_rss_mib():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB


def run_worker(args):
    if args.worker in PEAKS:
        result = worker_matmul_peak(PEAKS[args.worker])
    elif args.worker == KERAS:
        result = worker_script("keras_seed.py", args.keras_iterations)
    elif args.worker in TORCH:
        result = worker_script("torch_seed.py", row_iterations(args.worker, args.iterations),
                               *TORCH[args.worker][1])
    elif args.worker == HLO:
        result = {"instructions": hlo_instructions(CONFIGS[OURS])}
    else:
        raise ValueError(f"--worker={args.worker}: not a worker of this script")
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def _worker_env(checkout=REPO):
    """The environment of a worker subprocess: the checkout's gan."""
    return dict(os.environ, PYTHONPATH=checkout)


def spawn(name, args):
    cmd = [sys.executable, os.path.abspath(__file__), f"--worker={name}",
           f"--iterations={args.iterations}", f"--keras_iterations={args.keras_iterations}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env(), cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2), as in the gan.* programs."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def selected(name, only):
    """Whether --only (None: everything; "a|b": names containing a or b) selects a row."""
    return only is None or any(part in name for part in only.split("|"))


def argument_errors(args):
    # isinstance: Python 3.11's argparse turns "--iterations=--" into [] without calling int.
    errors = [f"--{name}={getattr(args, name)}: expected an integer >= 1"
              for name in ("iterations", "keras_iterations", "rounds")
              if getattr(args, name) is not None  # --rounds: its default depends on the mode
              and (not isinstance(getattr(args, name), int) or getattr(args, name) < 1)]
    unknown = [name for name in args.compare or () if name not in (*CONFIGS, MATMULS)]
    if unknown:
        errors.append(f"--compare: unknown config {unknown[0]!r}; expected one of: "
                      + "; ".join([*CONFIGS, MATMULS]))
    if args.checkouts and not args.compare:
        errors.append("--checkouts: needs --compare (the config each checkout runs)")
    for checkout in args.checkouts or ():
        if not os.path.isfile(os.path.join(checkout, "experiments", "benchmark.py")):
            errors.append(f"--checkouts: {checkout} holds no experiments/benchmark.py; expected "
                          "the root of a checkout of this repository")
    if args.only is not None and not any(selected(n, args.only)
                                         for n in list(CONFIGS) + [MATMULS, *TORCH, KERAS]):
        errors.append(f"--only={args.only}: matches no configuration")
    return errors


def main():
    parser = OneLineParser(description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=500,
                        help="Iterations per timed run at batch 32 (larger batches: as many "
                        "images).")
    parser.add_argument("--keras_iterations", type=int, default=200,
                        help="Iterations per timed run of the Keras loop.")
    parser.add_argument("--quick", action="store_true",
                        help="Fewer iterations and rounds: 200 and 3.")
    parser.add_argument("--only", default=None, help="Run only configs whose name contains this "
                        "(several: separated by |).")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                        help="Instead of the table: time two gan configs, or a gan config and "
                        "the matmuls-alone row (names as in the table), in interleaved rounds "
                        "and print the median ratio B/A.")
    parser.add_argument("--rounds", type=int, default=None,
                        help="Interleaved rounds: of the table (default 5, --quick 3) or of "
                        "--compare (default 12).")
    parser.add_argument("--checkouts", nargs=2, metavar=("A_DIR", "B_DIR"), default=None,
                        help="With --compare: run A from the first checkout of this repository "
                        "and B from the second (e.g. a worktree of the commit before a change), "
                        "to time a change to the code rather than a setting.")
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
        args.rounds = args.rounds or 12
        return interleaved(*args.compare, args)
    if args.quick:
        args.iterations, args.keras_iterations = 200, 100
    args.rounds = args.rounds or (3 if args.quick else 5)

    model, bf16_units = cpu_description()
    print(f"# {time.strftime('%Y-%m-%d')}  {model}, {os.cpu_count()} cores, bf16 matrix units: "
          f"{bf16_units}, Python {platform.python_version()}")
    peak_result = spawn("peak", args)
    peak = peak_result["gflops"]
    print(f"# float32 matmul peak (2048^3 tf.matmul, median): {peak:.1f} GFLOP/s "
          f"({kernel_rates(peak_result)})")
    if any("bfloat16" in name and selected(name, args.only) for name in CONFIGS):
        bf16 = spawn("peak_bfloat16", args)
        print(f"# bfloat16 matmul peak (same): {bf16['gflops']:.1f} GFLOP/s "
              f"({kernel_rates(bf16)}): {bf16['gflops'] / peak:.2f}x float32's")
    names = [n for n in list(CONFIGS) + [MATMULS, *TORCH, KERAS] if selected(n, args.only)]
    rates, peaks, skipped = table_rounds(names, args)
    print(f"# every row: median of {args.rounds} interleaved rounds (each row once a round, "
          f"{args.iterations} iterations at batch 32, as many images at larger batches); "
          "range: (max - min) / median over the rounds")
    header = (f"| {'configuration':<38} | {'iter/s':>8} | {'range':>6} | {'images/s':>9} | "
              f"{'GFLOP/iter':>10} | {'GFLOP/s':>8} | {'% peak':>6} | {'peak RSS MiB':>12} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name in names:
        if name in skipped:
            print(f"# {name}: skipped: {skipped[name]}", flush=True)
            continue
        rate = statistics.median(rates[name])
        spread = 100 * (max(rates[name]) - min(rates[name])) / rate
        gflop = flops_per_iteration(row_config(row_settings(name))) / 1e9
        print(f"| {name:<38} | {rate:>8.1f} | {spread:>5.1f}% | {rate * row_batch_size(name):>9.0f} "
              f"| {gflop:>10.3f} | {rate * gflop:>8.1f} | {100 * rate * gflop / peak:>5.1f}% | "
              f"{peaks[name]:>12.0f} |", flush=True)
    for line in ratio_lines(rates):
        print(line)
    if selected(OURS, args.only):
        print(f"# HLO instructions of one b32 joint iteration (optimized): "
              f"{spawn(HLO, args)['instructions']}")


# (numerator, denominator): the ratios the performance targets are stated in.
RATIOS = [
    (OURS, MATMULS),
    (OURS, "PyTorch eager b32 joint (SGD)"),
    ("gan b32 (joint, Adam)", "PyTorch eager b32 joint (Adam)"),
    (OURS, KERAS),
    ("gan b32 (seed's split D steps)", KERAS),
    ("gan b32 (joint, bfloat16)", OURS),
    ("gan b32 (joint, bfloat16, no XLA)", OURS),
    ("gan b32 (joint, float16)", OURS),
    ("gan b256 (joint, bfloat16)", "gan b256 (joint D step)"),
    ("gan b256 (joint, bfloat16, no XLA)", "gan b256 (joint D step)"),
    (DCGAN, "dcgan w32 b64 (XLA)"),
    (DCGAN, "PyTorch eager dcgan w32 b64 (Adam)"),
]


def table_rounds(names, args):
    """({row: its iterations/s, a round each}, {row: peak RSS MiB}, {row: why skipped}).

    Every gan row and the matmuls row is a warm server (`serve_timed_runs`), all started before
    the first round; a round times each row once, in an order that rotates from round to round,
    so that every row sees the same minutes of a drifting machine. A yardstick row (Keras,
    PyTorch) is its script run once a round, in its own process."""
    servers = {name: start_server(name, row_iterations(name, args.iterations))
               for name in names if name in CONFIGS or name == MATMULS}
    rates, peaks, skipped = {name: [] for name in names}, {}, {}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if name in servers:
                rates[name].append(timed_round(servers[name]))
            elif name not in skipped:
                result = spawn(name, args)
                if "skipped" in result:
                    skipped[name] = result["skipped"]
                    continue
                rates[name].append(result["iterations_per_sec"])
                peaks[name] = max(peaks.get(name, 0.0), result["peak_rss_mib"])
    for name, worker in servers.items():
        peaks[name] = stop_server(worker)
    return rates, peaks, skipped


def kernel_rates(peak_result):
    return ", ".join(f"{kernel} {gflops:.1f}" for kernel, gflops in peak_result["by_kernel"].items())


def ratio_lines(rates):
    """The RATIOS of the rows timed: each the median of its per-round ratios (both rows were
    timed in every round), with their range."""
    lines = []
    for a, b in RATIOS:
        if rates.get(a) and rates.get(b):
            ratios = [x / y for x, y in zip(rates[a], rates[b])]
            lines.append(f"# {a} / {b}: {statistics.median(ratios):.2f}x "
                         f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")
    return lines


def cpu_description():
    """(the CPU's model name, which bf16 matrix instructions it has) from /proc/cpuinfo."""
    from gan import machine
    model, flags = machine.cpu()
    units = sorted(flags & {"amx_bf16", "avx512_bf16"})
    return model, ", ".join(units) or "none"


if __name__ == "__main__":
    main()
