"""The benchmark's FLOP count against the matmuls XLA actually compiles for one iteration and
against DCGAN's layers written out; its yardstick rows when their library is missing."""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gan import config as config_lib
from gan import build
from gan import step as step_lib
from gan import data
from gan import flops
from helpers import (REPO, compiled_dots, load_benchmark, load_experiment_script,
                     user_environment)


def compiled_matmul_flops(hlo_text):
    """2 * (output elements) * (contracted size), summed over every dot in an HLO module."""
    return sum(2 * math.prod(output) * math.prod(contracted)
               for output, contracted in compiled_dots(hlo_text))


@pytest.mark.parametrize("batch", [32, 64])
def test_flop_count_matches_the_compiled_iteration(batch):
    benchmark = load_benchmark()
    config = benchmark.seed_mlp_config(batch, d_update="joint", d_fake_batchnorm="train")
    state = build.make_state(config)
    runner = step_lib.Trainer(state, config,
                              data.load("mnist", "test").pixels[:1000])
    compiled = compiled_matmul_flops(benchmark.optimized_hlo(runner))
    counted = benchmark.flops_per_iteration(config)
    # XLA may turn the 1-unit output layer's matmuls into multiply-reduce: 0.1% of the FLOPs.
    assert compiled == pytest.approx(counted, rel=2e-3), (compiled, counted)


@pytest.mark.parametrize("settings", [{"d_steps": 2}, {"r1_weight": 10.0},
                                      {"gp_weight": 10.0, "d_loss": "wasserstein",
                                       "g_loss": "wasserstein"}])
def test_flop_count_of_more_d_steps_and_of_a_penalty_matches_the_compiled_iteration(settings):
    """What a study's compute axis charges WGAN-GP's D steps and R1's double back-propagation
    (gan.flops) is what XLA compiles for them."""
    benchmark = load_benchmark()
    config = benchmark.seed_mlp_config(32, d_update="joint", d_fake_batchnorm="train")
    config = config.replace(**settings).validate()
    runner = step_lib.Trainer(build.make_state(config), config,
                              data.load("mnist", "test").pixels[:1000])
    compiled = compiled_matmul_flops(benchmark.optimized_hlo(runner))
    assert compiled == pytest.approx(flops.flops_per_iteration(config), rel=2e-3)
    assert flops.images_per_iteration(config) == 32 * config.game.d_steps


def test_matmuls_alone_row_compiles_the_steps_own_matmuls():
    """The ceiling row of target 1 runs every matmul of the step it is compared with: the same
    dot instructions (shapes and contracted sizes) as the compiled b32 joint iteration, and the
    FLOPs the benchmark counts. Its loop body holds one iteration, so its dots are one
    iteration's."""
    import tensorflow as tf
    benchmark = load_benchmark()
    config = benchmark.row_config(benchmark.CONFIGS[benchmark.OURS])
    loop = benchmark.matmuls_only_loop(config)
    alone = loop.experimental_get_compiler_ir(tf.constant(1))(stage="optimized_hlo")
    step = benchmark.optimized_hlo(benchmark.make_trainer(benchmark.CONFIGS[benchmark.OURS]))
    assert compiled_dots(alone) == compiled_dots(step)
    assert compiled_matmul_flops(alone) == pytest.approx(benchmark.flops_per_iteration(config),
                                                         rel=2e-3)


def test_dcgan_flop_count_is_its_layers_written_out():
    benchmark = load_benchmark()
    config = config_lib.from_flagfile(os.path.join(REPO, "experiments", "dcgan.flags"),
                                      batch_size=64)
    w = config.model.dcgan_width
    # G: Dense z -> 7x7x4w; ConvT 5x5 4w -> 2w on 7x7 inputs; ConvT 5x5 2w -> 1 on 14x14 inputs.
    g = [100 * 7 * 7 * 4 * w, 7 * 7 * 25 * 4 * w * 2 * w, 14 * 14 * 25 * 2 * w]
    # D: Conv 5x5 1 -> w, stride 2, 14x14 outputs; Conv 5x5 w -> 2w, 7x7 outputs; Dense 7x7x2w -> 1.
    wd = config.model.dcgan_d_width or w
    d = [14 * 14 * 25 * wd, 7 * 7 * 25 * wd * 2 * wd, 7 * 7 * 2 * wd]
    b = 64
    d_step = 2 * b * sum(g) + 2 * (2 * 2 * b * sum(d)) + 2 * 2 * b * sum(d[1:])
    g_step = 2 * b * sum(g) + 2 * b * sum(d) + 2 * b * sum(d) + 2 * b * sum(g) + 2 * b * sum(g[1:])
    assert benchmark.flops_per_iteration(config) == d_step + g_step


@pytest.mark.parametrize("script, module, name", [("torch_seed.py", "torch", "PyTorch"),
                                                  ("keras_seed.py", "keras", "Keras")])
def test_yardstick_rows_are_skipped_with_one_line_without_their_library(tmp_path, script, module,
                                                                      name):
    # A module that fails to import, first on the path: what a machine without the library sees.
    (tmp_path / f"{module}.py").write_text(f"raise ImportError('No module named {module}')\n")
    result = subprocess.run([sys.executable, os.path.join(REPO, "experiments", script),
                             "--iterations=2"], capture_output=True, text=True, cwd=REPO,
                            env=user_environment(PYTHONPATH=str(tmp_path)))
    assert result.returncode == load_benchmark().SKIPPED_EXIT_CODE
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert f"{name} is not installed; skipped" in result.stderr


def test_torch_peer_trains_the_same_step():
    pytest.importorskip("torch", reason="PyTorch (a yardstick only) is not installed")
    result = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "torch_seed.py"),
                             "--iterations=3", "--warmup=1", "--optimizer=adam"],
                            capture_output=True, text=True, cwd=REPO, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["iterations"] == 3 and report["iterations_per_sec"] > 0
    dcgan = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "torch_seed.py"),
                            "--architecture=dcgan", "--batch_size=8", "--iterations=2",
                            "--warmup=1", "--optimizer=adam"],
                           capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(dcgan.stdout.strip().splitlines()[-1])["iterations"] == 2


def torch_macs(network, inputs):
    """gan.flops.layer_macs' rule on a PyTorch network: per example, each Linear's weight size; a
    convolution's kernel size times its output's positions (its input's when transposed)."""
    from torch import nn
    macs = []

    def record(module, args, output):
        positions = {nn.Linear: 1, nn.Conv2d: math.prod(output.shape[2:]),
                     nn.ConvTranspose2d: math.prod(args[0].shape[2:])}[type(module)]
        macs.append(positions * module.weight.numel())
    hooks = [m.register_forward_hook(record) for m in network.modules()
             if type(m) in (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)]
    output = network(inputs)
    for hook in hooks:
        hook.remove()
    return macs, output


def test_torch_dcgan_is_gans_dcgan_layer_for_layer():
    """The PyTorch DCGAN row times the same networks as the gan row it is compared with: the
    same multiply-adds in every layer, the same trainable parameters, the same output shapes."""
    torch = pytest.importorskip("torch", reason="PyTorch (a yardstick only) is not installed")
    import tensorflow as tf
    config = config_lib.from_flagfile(os.path.join(REPO, "experiments", "dcgan.flags"),
                                      batch_size=64)
    state = build.make_state(config)
    z = tf.random.normal([2, config.model.latent_dim])
    ours = [flops.layer_macs(state.generator, z)]
    ours.append(flops.layer_macs(state.discriminator, ours[0][1]))
    g, d = load_experiment_script("torch_seed").build_dcgan(config.model.dcgan_width)
    theirs = [torch_macs(g.eval(), torch.randn(2, config.model.latent_dim))]
    theirs.append(torch_macs(d, theirs[0][1]))
    for (our_macs, _), (their_macs, _), net, module in zip(
            ours, theirs, (state.generator, state.discriminator), (g, d)):
        assert our_macs == their_macs
        assert sum(v.shape.num_elements() for v in net.trainable_variables) == sum(
            p.numel() for p in module.parameters())
    (_, our_images), (_, our_logits) = ours
    (_, their_images), (_, their_logits) = theirs
    n, channels, height, width = their_images.shape  # PyTorch's NCHW against gan's NHWC
    assert list(our_images.shape) == [n, height, width, channels]
    # one logit per image: gan's D returns shape [N], PyTorch's Linear [N, 1]
    assert our_logits.shape.num_elements() == their_logits.numel() == n


def test_profile_step_sorts_compiled_instructions_by_what_they_do():
    import tensorflow as tf
    from gan import optimizers
    profile_step = load_experiment_script("profile_step")
    assert profile_step.OPTIMIZER_SCOPE == optimizers.UPDATE_SCOPE
    weight = tf.Variable(tf.random.normal([64, 48]))
    adam = optimizers.Adam(0.1)
    adam.build([weight])

    @tf.function(jit_compile=True)
    def adam_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(x @ weight))
        grad = tape.gradient(loss, weight)
        adam.apply([grad], [weight])
        return tf.linalg.global_norm([grad]) + tf.random.stateless_normal([], seed=[1, 2])

    hlo = adam_step.experimental_get_compiler_ir(tf.ones([32, 64]))(stage="optimized_hlo")
    categories = profile_step.instruction_categories(hlo)
    lines = {name: line for line in hlo.splitlines()
             for name in re.findall(r"^\s*(?:ROOT )?%(\S+) = ", line)}
    kinds = {}
    for name, category in categories.items():
        kinds.setdefault(category, []).append(lines[name])
    # the forward matmul and its weight gradient
    assert sum(" dot(" in line for line in kinds["matmuls"]) == 2
    assert not any(" dot(" in line for c, ls in kinds.items() if c != "matmuls" for line in ls)
    assert any('op_type="L2Loss"' in line for line in kinds["gradient norms"])
    # the weight's update and both moments' (which XLA does not root in an Assign op)
    assert any('op_type="AssignSubVariableOp"' in line for line in kinds["optimizer updates"])
    assert not any(optimizers.UPDATE_SCOPE in line for c, ls in kinds.items()
                   if c != "optimizer updates" for line in ls)
    assert any('StatelessRandomNormal' in line for line in kinds["random numbers"])
    assert set(categories.values()) <= set(profile_step.CATEGORIES)


def test_profile_step_sorts_tensorflow_ops_of_a_run_without_xla(tmp_path):
    """Without XLA (the DCGAN rows) the profile is by TensorFlow op: a real trace is written,
    read back, and its convolutions (and their gradients), the optimizer's update and the noise
    each land in their category."""
    import tensorflow as tf
    from gan import optimizers
    profile_step = load_experiment_script("profile_step")
    kernel = tf.Variable(tf.random.normal([3, 3, 1, 4]))
    adam = optimizers.Adam(0.1)
    adam.build([kernel])

    @tf.function(jit_compile=False)
    def adam_step(x, seed):
        with tf.GradientTape() as tape:
            noise = tf.random.stateless_normal(tf.shape(x), seed=seed)
            loss = tf.reduce_sum(tf.square(tf.nn.conv2d(x + noise, kernel, 2, "SAME")))
        adam.apply([tape.gradient(loss, kernel)], [kernel])
        return loss

    x = tf.ones([2, 8, 8, 1])
    adam_step(x, tf.constant([1, 2]))  # the seed an input: Grappler folds a constant one away
    tf.profiler.experimental.start(str(tmp_path))
    for i in range(3):
        adam_step(x, tf.constant([1, i]))
    tf.profiler.experimental.stop()
    durations = profile_step.op_durations(str(tmp_path))
    categories = {}
    for (name, op_type), (picoseconds, runs) in durations.items():
        assert picoseconds >= 0 and runs >= 1
        categories.setdefault(profile_step.op_category(name, op_type), set()).add(op_type)
    assert any("Conv2D" in t and "Backprop" not in t for t in categories["matmuls"])
    assert any("Conv2DBackpropFilter" in t for t in categories["matmuls"])
    assert "AssignSubVariableOp" in categories["optimizer updates"]
    assert any(t.startswith("StatelessRandom") for t in categories["random numbers"])
    assert not any("Conv" in t for c, ts in categories.items() if c != "matmuls" for t in ts)
    assert set(categories) <= set(profile_step.CATEGORIES)


def test_compare_times_the_step_against_its_own_matmuls_in_interleaved_rounds(tmp_path):
    """--compare takes the matmuls-alone row as well as gan configs: both run warm in their own
    process, in alternating rounds, and the printed ratio is the median of the rounds' ratios.
    (The row against itself: the gan step's compile would double this test's time.) With
    --checkouts, B runs from a second copy of the code, here one made for the test."""
    benchmark = load_benchmark()
    a = b = benchmark.MATMULS
    other = tmp_path / "checkout"
    for folder in ("gan", "experiments"):
        shutil.copytree(os.path.join(REPO, folder), other / folder)
    result = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "benchmark.py"),
                             "--compare", a, b, "--iterations=3", "--rounds=3",
                             "--checkouts", REPO, str(other)],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    medians = [float(re.search(r"median ([\d.]+) iter/s", line).group(1)) for line in lines[:2]]
    assert lines[0].startswith(f"# A = {a} ({REPO}):")
    assert lines[1].startswith(f"# B = {b} ({other}):")
    assert min(medians) > 0
    summary = re.search(r"B/A, median of 3 interleaved rounds of 3 iterations: ([\d.]+)  "
                        r"\(rounds: ([\d. ]+)\)", lines[2])
    rounds = [float(r) for r in summary.group(2).split()]
    assert len(rounds) == 3 and float(summary.group(1)) == pytest.approx(sorted(rounds)[1], abs=0.01)
    bad = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "benchmark.py"),
                          "--compare", a, "no such row"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "--compare: unknown config 'no such row'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    elsewhere = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "benchmark.py"),
                                "--compare", a, b, "--checkouts", REPO, str(tmp_path)],
                               capture_output=True, text=True, cwd=REPO)
    assert elsewhere.returncode == 2
    assert f"--checkouts: {tmp_path} holds no experiments/benchmark.py" in elsewhere.stderr


def test_seed_job_profile_reports_the_jobs_own_training_time():
    """profile_seed_job's child runs gan.train with the seed's flags (shortened here) and adds up
    the time of the trainer's calls, which must be counted (0 if the patch missed them) and be
    part of the wall time; a job that fails is an error carrying gan.train's message."""
    profile = load_experiment_script("profile_seed_job")
    wall, peak_mib, training = profile.child_job(
        ["--num_steps=40", "--sample_every=20", "--log_every=20", "--checkpoint_every=40",
         "--eval_every=0", "--steps_per_loop=20"])
    assert 0 < training < wall
    assert 100 < peak_mib < 4096
    with pytest.raises(RuntimeError, match="--batch_size"):
        profile.child_job(["--batch_size=0"])


def test_seed_job_profile_times_evaluation_beside_training():
    """The overlap comparison trains as many iterations as it says, twice a round, and both of
    its evaluations measure a generator (every metric there and finite)."""
    profile = load_experiment_script("profile_seed_job")
    rows, step = profile.compare_overlap(rounds=1, iterations=20, num_samples=1000)
    (serial, overlapped, serial_metrics, overlapped_metrics), = rows
    assert step == 20 + 2 * 20  # the compiling call, then both halves of the round
    assert serial > 0 and overlapped > 0
    for results in (serial_metrics, overlapped_metrics):
        assert results["num_samples"] == 1000
        assert all(np.isfinite(results[name]) for name in ("fid", "kid", "precision", "recall"))


def test_table_times_every_row_in_interleaved_rounds_with_its_range():
    """The table as a user runs it, cut down: the peak line, a row per selected config with
    consistent columns (each row the median of its rounds, its range at least 0), the target
    ratio as the median of the rounds' ratios, within the rows' own ratio's bounds, and the HLO
    count. (Timings here are a few iterations and say nothing; the structure is under test.)"""
    benchmark = load_benchmark()
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "experiments", "benchmark.py"),
         "--iterations=3", "--rounds=3", f"--only={benchmark.OURS}|{benchmark.MATMULS}"],
        capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert re.match(r"# float32 matmul peak \(2048\^3 tf.matmul, median\): [\d.]+ GFLOP/s", lines[1])
    assert "median of 3 interleaved rounds" in result.stdout
    rows = {cells[0]: [float(c.rstrip("%")) for c in cells[1:]]
            for cells in ([c.strip() for c in line.strip("|").split("|")]
                          for line in lines if line.startswith("| ") and "configuration" not in line)}
    assert set(rows) == {benchmark.OURS, benchmark.MATMULS}
    for name, (rate, spread, images, gflop, gflops, _, peak) in rows.items():
        # Each column is rounded from the unrounded rate: iter/s to 0.05, so images/s (32 per
        # iteration, itself rounded to 0.5) to within 32 * 0.05 + 0.5.
        assert rate > 0 and spread >= 0
        assert images == pytest.approx(rate * 32, abs=2.1)
        assert gflops == pytest.approx(rate * gflop, rel=0.01, abs=0.2)
        assert 0 < peak < 8192
    ratio = re.search(rf"# {re.escape(benchmark.OURS)} / {re.escape(benchmark.MATMULS)}: "
                      r"([\d.]+)x \(rounds ([\d.]+)-([\d.]+)\)", result.stdout)
    assert ratio, result.stdout
    median, low, high = (float(g) for g in ratio.groups())
    assert low <= median <= high
    assert re.search(r"# HLO instructions of one b32 joint iteration \(optimized\): \d+",
                     result.stdout)


@pytest.fixture(scope="module")
def parallel_speedup():
    return load_experiment_script("parallel_speedup")  # once: it defines absl flags


@pytest.mark.parametrize("evaluate, eval_every", [(False, 0), (True, 2000)])
def test_parallel_speedups_study_is_mnist_mlp_over_seeds(tmp_path, parallel_speedup, evaluate,
                                                         eval_every):
    """The study parallel_speedup.py times: --runs seeds of mnist_mlp.flags at --steps, with its
    evaluations only for --compare=steady."""
    from gan.study import plan as plan_lib
    path = tmp_path / "timing.toml"
    path.write_text(parallel_speedup.study_text(3, 50, evaluate=evaluate))
    runs = plan_lib.plan(plan_lib.load_study(str(path)))
    assert [run.seed for run in runs] == [0, 1, 2]
    assert {(run.config.schedule.num_steps, run.config.output.eval_every) for run in runs} == {
        (50, eval_every)}
