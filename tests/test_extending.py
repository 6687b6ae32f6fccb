"""Adding to the codebase touches the registry and nothing else.

This module registers a new D loss, G loss, penalty, optimizer, normalization, metric and
architecture, each defined here, and then, with no other file touched:
  - each is a choice of its flag (and the penalty has its --<name>_weight flag),
  - the validation refuses a misspelt name and lists the new one among the valid choices,
  - one training of a few steps uses all of them at once, its evaluation computes the metric,
  - a study whose axis sweeps the new normalization plans, trains and reports, with the new
    metric a column of results.csv and results.md and a metric of the HParams configuration.
The registrations happen before `gan.config` is imported, where a penalty's weight field is
made, so the work runs in a child process (`python tests/test_extending.py <folder>`), which
prints what it found as JSON for the test below to check.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 4
STUDY = """
description = "A new normalization against none, with every other new entry in the base."
base = "base.flags"
seeds = [0]

[axes]
d_norm = ["none", "rms"]
"""


def register():
    """The new entries, each in its registry. The penalty comes first: the schema makes its
    weight setting when gan.config is imported (which gan.evaluator does)."""
    import tensorflow as tf
    from gan import penalties
    penalties.PENALTIES["jitter"] = penalties.Penalty(
        # Draws with rng.normal, which the replicas' streams have too.
        lambda d, real, fake, rng: tf.reduce_mean(tf.square(
            d(real + 0.01 * rng.normal(tf.shape(real)), training=True))),
        uses_fake=False, help="Weight of E[D(x + 0.01 n)^2] (a test penalty).",
        bounds_gradient=False, draws_noise=True, takes_gradient_scale=False)
    from gan import evaluator, losses, networks, normalizations, optimizers

    losses.D_LOSSES["softplus_hinge"] = losses.DiscriminatorLoss(
        "a test loss: E_r softplus(1 - l_r) + E_f softplus(1 + l_f)",
        real_term=lambda real: tf.reduce_mean(tf.nn.softplus(1.0 - real)),
        fake_term=lambda fake: tf.reduce_mean(tf.nn.softplus(1.0 + fake)))
    losses.G_LOSSES["softplus_hinge"] = losses.GeneratorLoss(
        lambda fake, real=None: tf.reduce_mean(tf.nn.softplus(1.0 - fake)), "a test loss")

    class SignSGD(optimizers.Optimizer):
        """w <- w - lr * sign(g) (Bernstein et al. 2018), a test optimizer."""
        HYPERPARAMETERS = ()

        def _update(self, grad, variable, slots, lr, step):
            variable.assign_sub(lr * tf.sign(grad))

    optimizers.OPTIMIZERS["signsgd"] = SignSGD

    class RMSNorm(tf.Module):
        """x / sqrt(mean(x^2) + eps) * scale, over the features (Zhang & Sennrich 2019)."""

        def __init__(self, num_features):
            super().__init__()
            self.scale = tf.Variable(tf.ones([num_features]), name="scale")

        def __call__(self, x, training):
            mean_square = tf.reduce_mean(tf.square(x), axis=-1, keepdims=True)
            return x * tf.math.rsqrt(mean_square + 1e-6) * tf.cast(self.scale, x.dtype)

    normalizations.NORMALIZATIONS["rms"] = normalizations.Normalization(
        lambda num_features, config, bn_momentum: RMSNorm(num_features), None,
        per_example=True, cancels_bias=False)
    evaluator.METRICS["mean_confidence"] = evaluator.Metric(
        "confidence", 3, lower_is_better=False,
        compute=lambda features, probs, labels, evaluator: np.mean(np.max(probs, axis=1)))

    def tiny_mlps(config, bn_momentum):
        import dataclasses
        small = dataclasses.replace(config, g_hidden=(16,), d_hidden=(16, 8))
        return networks.MLPGenerator(small, bn_momentum), networks.MLPDiscriminator(
            small, bn_momentum)

    networks.ARCHITECTURES["tiny_mlp"] = networks.Architecture(
        tiny_mlps, bn_momentum=0.9, xla=False, help="a test architecture: MLPs of 16 units")


NEW = {"d_loss": "softplus_hinge", "g_loss": "softplus_hinge", "g_optimizer": "signsgd",
       "d_norm": "rms", "architecture": "tiny_mlp"}


def child(folder):
    register()
    from absl import flags
    from gan import config, optimizers, registry
    from gan import run as run_lib
    from gan.study import plan as plan_lib
    from gan.study import report, status
    found = {}

    flag_values = flags.FlagValues()
    config.define_flags(flag_values)
    found["choices"] = {name: flag_values[name].parser.enum_values for name in NEW}
    found["penalty_flag"] = flag_values["jitter_weight"].default
    refused = {}
    for name, value in NEW.items():
        try:
            config.RunConfig().replace(**{name: value + "x"})
        except config.ConfigError as e:
            refused[name] = e.lines[0]
    found["refused"] = refused

    class Unbuildable(optimizers.Optimizer):
        """Declares no HYPERPARAMETERS."""
    optimizers.OPTIMIZERS["unbuildable"] = Unbuildable
    try:
        optimizers.make_optimizer("unbuildable", 0.1)
    except TypeError as e:
        found["unbuildable"] = str(e)
    del optimizers.OPTIMIZERS["unbuildable"]
    found["unknown"] = registry.unknown("optimizer", "adagrad", optimizers.OPTIMIZERS)

    base = config.RunConfig().replace(
        **NEW, jitter_weight=0.5, batch_size=8, num_steps=STEPS, log_every=STEPS,
        sample_every=STEPS, checkpoint_every=STEPS, eval_every=STEPS, eval_num_samples=100,
        jit_compile="false").validate()
    result = run_lib.train(base, os.path.join(folder, "single"))
    found["train_metrics"] = result.train_metrics
    found["eval_metrics"] = {k: v for k, v in result.eval_metrics.items()
                             if isinstance(v, (int, float))}

    with open(os.path.join(folder, "base.flags"), "w") as f:
        f.write(base.to_flagfile())
    with open(os.path.join(folder, "new_norm.toml"), "w") as f:
        f.write(STUDY)
    study = plan_lib.load_study(os.path.join(folder, "new_norm.toml"))
    runs = plan_lib.plan(study)
    root = os.path.join(folder, "root")
    for run in runs:  # as the runner's gan.train processes would, whose records it writes
        result = run_lib.train(run.config, os.path.join(root, run.name))
        status.write_status(os.path.join(root, run.name), {
            "status": "done", "step": result.step, "flags_digest": plan_lib.run_digest(run)})
    found["study_runs"] = [run.name for run in runs]
    found["report"] = report.write_report(study, root, runs, "test")

    from gan import penalties
    penalties.PENALTIES["too_late"] = penalties.PENALTIES["jitter"]
    try:
        config.RunConfig()
    except config.ConfigError as e:
        found["too_late"] = e.lines
    print("FOUND " + json.dumps(found))


def test_new_registry_entries_need_no_other_file(tmp_path):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                                  PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr[-4000:]
    found = json.loads(out.stdout.split("FOUND ", 1)[1])
    for name, value in NEW.items():
        assert value in found["choices"][name], name
        assert value in found["refused"][name], found["refused"][name]  # listed as valid
        assert found["refused"][name].startswith(f"--{name}={value}x: expected one of")
    assert found["penalty_flag"] == 0.0
    assert "declares no HYPERPARAMETERS" in found["unbuildable"]
    assert found["unknown"].startswith("unknown optimizer 'adagrad'; valid choices: adam,")

    metrics = found["train_metrics"]
    assert metrics["penalty_jitter"] > 0 and np.isfinite(metrics["g_loss"])
    assert "d_real_prob" not in metrics  # the new D loss does not declare probabilities
    assert 0.1 <= found["eval_metrics"]["mean_confidence"] <= 1.0
    assert found["eval_metrics"]["fid"] > 0

    assert found["study_runs"] == ["d_norm=none,seed=0", "d_norm=rms,seed=0"]
    with open(tmp_path / "root" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["status"] for row in rows] == ["done", "done"]
    assert all(0.1 <= float(row["mean_confidence"]) <= 1.0 for row in rows)
    markdown = (tmp_path / "root" / "results.md").read_text()
    assert "| confidence |" in markdown and "`d_norm=rms`" in markdown
    from gan import events
    hparams = [path for path in events.event_files(str(tmp_path / "root"))
               if events.holds_only(path, "hparams")]
    assert len(hparams) == 1 and b"eval/mean_confidence" in open(hparams[0], "rb").read()
    # A penalty registered too late for its weight flag is refused in one line, not ignored.
    assert found["too_late"] == ["penalty 'too_late' was registered after gan.config was "
                                 "imported, so it has no --too_late_weight; register it in "
                                 "gan/penalties.py, or before importing gan.config"]


if __name__ == "__main__":
    child(sys.argv[1])
