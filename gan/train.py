r"""Trains a GAN: `python -m gan.train --flagfile=experiments/seed.flags --logdir=runs/seed`.

Leaves in --logdir: TensorBoard event files (scalars, the sample grid, the flags as text),
samples/step_NNNNNN.png from one fixed noise batch, checkpoints/ (tf.train.CheckpointManager) and
config.json. Rerunning the same command resumes from the latest checkpoint.
"""

import os
import signal
import sys
import time

from absl import app, flags
import tensorflow as tf

from gan import data, evaluation, experiment, images, losses, networks, optimizers, trainer

FLAGS = flags.FLAGS

# --- data and networks ---------------------------------------------------------------------------
flags.DEFINE_enum("dataset", "mnist", list(data.DATASETS), "Training dataset.")
flags.DEFINE_string("data_dir", None, "Directory with the dataset's four IDX files (raw or .gz). "
                    "Default: the bundled MNIST; for Fashion-MNIST, Debian's "
                    "/usr/share/datasets/fashion-mnist, then a download into ~/.cache/gan.")
flags.DEFINE_enum("architecture", "mlp", sorted(networks.ARCHITECTURES),
                  "Generator/discriminator pair.")
flags.DEFINE_integer("latent_dim", 100, "Size of the noise vector z ~ N(0, I).")
flags.DEFINE_list("g_hidden", ["256", "512", "1024"], "MLP generator hidden widths.")
flags.DEFINE_list("d_hidden", ["512", "256"], "MLP discriminator hidden widths.")
flags.DEFINE_integer("dcgan_width", 64, "DCGAN base channel count.")
flags.DEFINE_float("bn_momentum", 0.8, "Generator BatchNorm moving-average momentum "
                   "(the seed's 0.8).")
flags.DEFINE_float("bn_epsilon", 1e-3, "Generator BatchNorm epsilon (Keras' 1e-3).")

# --- the game ------------------------------------------------------------------------------------
flags.DEFINE_enum("d_loss", "minimax", sorted(losses.D_LOSSES), "Discriminator loss.")
flags.DEFINE_enum("g_loss", "non_saturating", sorted(losses.G_LOSSES),
                  "Generator loss: saturating is the minimax game's log(1 - D(G(z))), "
                  "non_saturating is -log D(G(z)).")
flags.DEFINE_integer("d_steps", 1, "Discriminator updates per generator update.")
flags.DEFINE_enum("d_update", "joint", list(trainer.D_UPDATES),
                  "joint: one D step on the real+fake loss. split: a step on the real batch, then "
                  "a separate step on the fake batch (the seed's two train_on_batch calls).")
flags.DEFINE_enum("d_fake_batchnorm", "train", list(trainer.FAKE_BATCHNORM_MODES),
                  "BatchNorm mode of G when making D's fake batch: train (batch statistics) or "
                  "inference (moving averages, as the seed's generator.predict).")


def _define_optimizer_flags(prefix, net):
    flags.DEFINE_enum(f"{prefix}_optimizer", "adam", sorted(optimizers.OPTIMIZERS),
                      f"{net} optimizer.")
    flags.DEFINE_float(f"{prefix}_learning_rate", 2e-4, f"{net} learning rate.")
    flags.DEFINE_float(f"{prefix}_beta1", 0.5, f"{net} Adam beta1 (Radford et al. 2016's 0.5).")
    flags.DEFINE_float(f"{prefix}_beta2", 0.999, f"{net} Adam beta2.")
    flags.DEFINE_float(f"{prefix}_epsilon", 1e-7, f"{net} Adam/RMSprop epsilon.")
    flags.DEFINE_float(f"{prefix}_momentum", 0.0, f"{net} SGD/RMSprop momentum.")
    flags.DEFINE_boolean(f"{prefix}_nesterov", False, f"{net} SGD Nesterov momentum.")
    flags.DEFINE_float(f"{prefix}_rho", 0.9, f"{net} RMSprop decay rate.")


_define_optimizer_flags("g", "Generator")
_define_optimizer_flags("d", "Discriminator")

# --- schedule and outputs ------------------------------------------------------------------------
flags.DEFINE_integer("batch_size", 64, "Real images per discriminator step (and fakes per step).")
flags.DEFINE_integer("num_steps", 10000, "Training iterations (one iteration = d_steps D updates "
                     "+ one G update).")
flags.DEFINE_integer("seed", 0, "Random seed for weights, batches and noise.")
flags.DEFINE_string("logdir", None, "Directory for events, samples and checkpoints; rerunning "
                    "with the same logdir resumes.")
flags.DEFINE_integer("log_every", 100, "Steps between scalar summaries and console lines; each "
                     "value is the mean over the iterations since the last one.")
flags.DEFINE_integer("sample_every", 200, "Steps between sample grids (PNG and TensorBoard).")
flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints (one is also written at "
                     "the end).")
flags.DEFINE_integer("keep_checkpoints", 3, "Rolling checkpoints to keep.")
flags.DEFINE_integer("eval_every", 2000, "Steps between evaluations (FID, KID, classifier score, "
                     "precision/recall, class coverage) against the training set; 0 turns them "
                     "off. The checkpoint with the best FID is kept in best_checkpoint/.")
flags.DEFINE_integer("eval_num_samples", 10000, "Generated samples per evaluation.")
flags.DEFINE_integer("grid_size", 5, "Sample grid is grid_size x grid_size (the seed's 5x5).")
flags.DEFINE_integer("steps_per_loop", 100, "Iterations per compiled call; logging, samples and "
                     "checkpoints still happen at their exact steps.")
flags.DEFINE_boolean("jit_compile", True, "Compile the training loop with XLA.")
flags.DEFINE_enum("on_nonfinite", "stop", ["stop", "rollback"],
                  "When a loss or gradient becomes NaN/inf: stop (keeping the last good "
                  "checkpoint), or roll back to the last checkpoint and continue with the "
                  "learning rates multiplied by --rollback_lr_factor.")
flags.DEFINE_float("rollback_lr_factor", 0.5, "Learning-rate multiplier at each roll-back.")
flags.DEFINE_boolean("restart", False, "Start over in a logdir that holds a previous run: the "
                     "old files are moved to <logdir>/archived-<time>/, never deleted.")
flags.DEFINE_boolean("deterministic", False, "Enable TensorFlow op determinism, so that the same "
                     "seed gives bitwise-identical weights (slower on some ops).")

flags.mark_flag_as_required("logdir")

SAMPLE_NOISE_SALT = 1234567  # keeps the fixed sample noise apart from the training RNG stream


def run_config():
    """The flag values that define a run, as a JSON-able dict (saved as config.json)."""
    config = {name: FLAGS[name].value for name in (
        "dataset", "architecture", "latent_dim", "dcgan_width", "bn_momentum", "bn_epsilon",
        "d_loss", "g_loss", "d_steps", "d_update", "d_fake_batchnorm", "batch_size", "num_steps",
        "seed")}
    config["g_hidden"] = [int(w) for w in FLAGS.g_hidden]
    config["d_hidden"] = [int(w) for w in FLAGS.d_hidden]
    for prefix in ("g", "d"):
        for key in ("optimizer", "learning_rate", "beta1", "beta2", "epsilon", "momentum",
                    "nesterov", "rho"):
            config[f"{prefix}_{key}"] = FLAGS[f"{prefix}_{key}"].value
    return config


def fixed_noise(config, count):
    return tf.random.stateless_normal([count, config["latent_dim"]],
                                      seed=[config["seed"], SAMPLE_NOISE_SALT])


def sample_grid(generator, noise, grid_size):
    samples = generator(noise, training=False)
    return images.make_grid(images.to_uint8(samples.numpy()), grid_size, grid_size)


def window_means(window):
    """Means over all iterations of a list of (per-call metric means, iteration count)."""
    total = sum(count for _, count in window)
    names = [name for name, value in window[0][0].items() if value.dtype == tf.float32]
    return {name: sum(float(metrics[name]) * count for metrics, count in window) / total
            for name in names}


def next_boundary(step, every):
    return (step // every + 1) * every


NONFINITE_EXIT_CODE = 3
AFTER_WRITE_FAILURE = ("The last complete checkpoint is intact; free space (or fix permissions) "
                       "and rerun the same command to resume.")
MAX_ROLLBACKS = 5


class StopTraining(Exception):
    """Ends the run with a message (and a non-zero exit code) without a traceback."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


class Run:
    """One training run: state, compiled trainer, writers; `train()` drives the loop."""

    def __init__(self, config, logdir):
        self.config = config
        self.logdir = logdir
        dataset = data.load(config["dataset"], "train", FLAGS.data_dir)
        if FLAGS.batch_size > dataset.num_examples:
            raise StopTraining(f"--batch_size={FLAGS.batch_size} is larger than the "
                               f"{dataset.num_examples} training images of {config['dataset']}; "
                               "expected at most that many", 2)
        self.state = experiment.make_state(config)
        self.trainer = trainer.Trainer(self.state, experiment.trainer_config(config),
                                       dataset.images, jit_compile=FLAGS.jit_compile)
        self.checkpoint = tf.train.Checkpoint(state=self.state)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, experiment.checkpoint_dir(logdir),
            max_to_keep=FLAGS.keep_checkpoints, step_counter=self.state.step)
        self.writer = tf.summary.create_file_writer(logdir)
        self.noise = fixed_noise(config, FLAGS.grid_size ** 2)
        self.evaluator = None
        if FLAGS.eval_every > 0:
            self.evaluator = evaluation.Evaluator(config["dataset"], FLAGS.eval_num_samples,
                                                  FLAGS.data_dir)
            self.best_manager = tf.train.CheckpointManager(
                self.checkpoint, os.path.join(logdir, experiment.BEST_CHECKPOINT_SUBDIR),
                max_to_keep=1, step_counter=self.state.step)
        self.stop_signal = None
        self.rollbacks = 0

    def restore(self):
        path = experiment.restore(self.state, self.logdir)
        if path:
            print(f"Resumed from {path} at step {int(self.state.step.numpy())}", flush=True)
        return path

    def apply_changed_learning_rates(self, previous):
        """The checkpoint holds each optimizer's current learning rate (lowered by roll-backs);
        a learning-rate flag changed since the previous run overrides it."""
        for prefix, optimizer in (("g", self.state.g_optimizer), ("d", self.state.d_optimizer)):
            key = f"{prefix}_learning_rate"
            if previous.get(key) != self.config[key]:
                optimizer.learning_rate.assign(self.config[key])
                print(f"--{key} changed from {previous.get(key)} to {self.config[key]}; using it",
                      flush=True)

    def save_checkpoint(self, step):
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            # TensorFlow writes a checkpoint under temporary names and renames it when complete,
            # and updates the `checkpoint` index last, so the previous checkpoint stays usable.
            raise StopTraining(f"could not write the checkpoint for step {step} in "
                               f"{experiment.checkpoint_dir(self.logdir)}: {e}. "
                               f"{AFTER_WRITE_FAILURE}") from None

    def write_samples(self, step):
        grid = sample_grid(self.state.generator, self.noise, FLAGS.grid_size)
        images.write_png(os.path.join(self.logdir, "samples", f"step_{step:06d}.png"), grid)
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None])

    def write_scalars(self, step, metrics, steps_per_sec):
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(f"train/{name}", value)
            tf.summary.scalar("train/g_learning_rate", self.state.g_optimizer.learning_rate)
            tf.summary.scalar("train/d_learning_rate", self.state.d_optimizer.learning_rate)
            tf.summary.scalar("perf/steps_per_sec", steps_per_sec)

    def evaluate(self, step):
        results = evaluation.evaluate_state(self.evaluator, self.state, self.config)
        with self.writer.as_default(step=step):
            for name in evaluation.SCALAR_METRICS:
                tf.summary.scalar(f"eval/{name}", results[name])
        best = experiment.read_best(self.logdir)
        if best is None or results["fid"] < best["fid"]:
            path = self.best_manager.save(checkpoint_number=step)
            experiment.write_best(self.logdir, {"step": step, "fid": results["fid"],
                                                "checkpoint": os.path.basename(path)})
        print(f"eval at step {step}: {evaluation.format_metrics(results)}", flush=True)

    def handle_nonfinite(self, metrics):
        """Stops (the default) or rolls back to the last checkpoint with lower learning rates."""
        step = int(self.state.step.numpy())
        bad = [label for key, label in (("d_loss_finite", "discriminator loss"),
                                        ("g_loss_finite", "generator loss"),
                                        ("d_grad_norm_finite", "discriminator gradients"),
                                        ("g_grad_norm_finite", "generator gradients"))
               if not bool(metrics[key])]
        what = f"non-finite {', '.join(bad)} at step {step}"
        last = self.manager.latest_checkpoint
        if FLAGS.on_nonfinite == "stop" or last is None or self.rollbacks >= MAX_ROLLBACKS:
            reason = "" if FLAGS.on_nonfinite == "stop" else (
                " (no checkpoint to roll back to)" if last is None else
                f" ({MAX_ROLLBACKS} roll-backs already)")
            raise StopTraining(
                f"{what}{reason}. Nothing was saved after it; the last good checkpoint is "
                f"{last or 'none'}. Lower the learning rates, or use --on_nonfinite=rollback.",
                NONFINITE_EXIT_CODE)
        optimizers_in_use = (self.state.g_optimizer, self.state.d_optimizer)
        rates_in_use = [float(o.learning_rate) for o in optimizers_in_use]
        self.checkpoint.restore(last).assert_existing_objects_matched()
        self.rollbacks += 1
        restored_step = int(self.state.step.numpy())
        lines = []
        # Lower the rates that diverged, not the older ones the checkpoint holds.
        for optimizer, rate in zip(optimizers_in_use, rates_in_use):
            optimizer.learning_rate.assign(rate * FLAGS.rollback_lr_factor)
            lines.append(f"{optimizer.name} learning rate -> {float(optimizer.learning_rate):.3g}")
        message = (f"{what}: rolled back to {last} (step {restored_step}); "
                   + "; ".join(lines))
        print(message, flush=True)
        with self.writer.as_default(step=step):
            tf.summary.text("rollback", message)
        return restored_step

    def train(self):
        num_steps = self.config["num_steps"]
        step = int(self.state.step.numpy())
        if step == 0:
            with self.writer.as_default(step=0):
                tf.summary.text("flags", "```\n" + FLAGS.flags_into_string() + "\n```")
        last_log_time, last_log_step, start_time, start_step = time.time(), step, time.time(), step
        window = []  # (metric means of one call, its iteration count) since the last log
        while step < num_steps:
            if self.stop_signal is not None:
                self.save_checkpoint(step)
                self.writer.flush()
                raise StopTraining(f"stopped by signal {self.stop_signal} at step {step}; "
                                   "checkpoint saved, rerun the same command to resume.", 0)
            chunk_end = min(num_steps, step + FLAGS.steps_per_loop,
                            next_boundary(step, FLAGS.log_every),
                            next_boundary(step, FLAGS.sample_every),
                            next_boundary(step, FLAGS.checkpoint_every),
                            next_boundary(step, FLAGS.eval_every or num_steps))
            metrics = self.trainer.run(chunk_end - step)
            # One scalar fetch per call (not per iteration): did the loop stop on a bad value?
            if not bool(metrics["all_finite"]):
                step = self.handle_nonfinite(metrics)
                window, last_log_time, last_log_step = [], time.time(), step
                continue
            window.append((metrics, chunk_end - step))
            step = chunk_end
            if step % FLAGS.log_every == 0 or step == num_steps:
                values = window_means(window)
                window = []
                now = time.time()
                steps_per_sec = (step - last_log_step) / max(now - last_log_time, 1e-9)
                last_log_time, last_log_step = now, step
                self.write_scalars(step, values, steps_per_sec)
                overall = (step - start_step) / max(now - start_time, 1e-9)
                eta = (num_steps - step) / max(overall, 1e-9)
                print(f"step {step:>7d}/{num_steps}  d_loss {values['d_loss']:.4f}  "
                      f"g_loss {values['g_loss']:.4f}  D(x) {values['d_real_prob']:.3f}  "
                      f"D(G(z)) {values['d_fake_prob']:.3f}  {steps_per_sec:.1f} steps/s  "
                      f"ETA {eta:.0f}s", flush=True)
            if step % FLAGS.sample_every == 0 or step == num_steps:
                self.write_samples(step)
            if self.evaluator and (step % FLAGS.eval_every == 0 or step == num_steps):
                self.evaluate(step)
            if step % FLAGS.checkpoint_every == 0 or step == num_steps:
                self.save_checkpoint(step)
        self.writer.flush()
        return step


def validate_flags():
    """One line per invalid flag value or combination: what is wrong and what is expected."""
    errors = []

    def check(ok, flag, expected):
        if not ok:
            errors.append(f"--{flag}={FLAGS[flag].value}: expected {expected}")

    for flag in ("latent_dim", "batch_size", "num_steps", "d_steps", "log_every", "sample_every",
                 "checkpoint_every", "keep_checkpoints", "grid_size", "steps_per_loop",
                 "dcgan_width"):
        check(FLAGS[flag].value >= 1, flag, "an integer >= 1")
    check(FLAGS.eval_every >= 0, "eval_every", "an integer >= 0 (0 turns evaluation off)")
    check(FLAGS.eval_num_samples >= 10, "eval_num_samples", "an integer >= 10")
    for flag in ("g_hidden", "d_hidden"):
        widths = FLAGS[flag].value
        check(bool(widths) and all(w.strip().isdigit() and int(w) >= 1 for w in widths), flag,
              "a comma-separated list of positive integers, e.g. 256,512")
    check(0.0 <= FLAGS.bn_momentum <= 1.0, "bn_momentum", "a value in [0, 1]")
    check(FLAGS.bn_epsilon > 0, "bn_epsilon", "a value > 0")
    for prefix in ("g", "d"):
        check(FLAGS[f"{prefix}_learning_rate"].value > 0, f"{prefix}_learning_rate", "a value > 0")
        for name in ("beta1", "beta2", "momentum", "rho"):
            check(0.0 <= FLAGS[f"{prefix}_{name}"].value < 1.0, f"{prefix}_{name}",
                  "a value in [0, 1)")
        check(FLAGS[f"{prefix}_epsilon"].value > 0, f"{prefix}_epsilon", "a value > 0")
    check(0.0 < FLAGS.rollback_lr_factor < 1.0, "rollback_lr_factor", "a value in (0, 1)")
    return errors


def prepare_logdir(logdir, config):
    """Checks the logdir can be written and that a checkpoint in it fits this run; archives the
    old run first when --restart is given. Raises StopTraining otherwise. Returns the config of
    the run being resumed, or None."""
    old = None
    if os.path.exists(logdir) and not os.path.isdir(logdir):
        raise StopTraining(f"--logdir={logdir} exists and is not a directory", 2)
    try:
        os.makedirs(logdir, exist_ok=True)
        probe = os.path.join(logdir, f".write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as e:
        raise StopTraining(f"--logdir={logdir} is not writable: {e}", 2) from None
    has_checkpoint = tf.train.latest_checkpoint(experiment.checkpoint_dir(logdir)) is not None
    if has_checkpoint and FLAGS.restart:
        archive = os.path.join(logdir, time.strftime("archived-%Y%m%d-%H%M%S", time.gmtime()))
        os.makedirs(archive)
        for name in os.listdir(logdir):
            if not name.startswith("archived-"):
                os.rename(os.path.join(logdir, name), os.path.join(archive, name))
        print(f"--restart: moved the previous run to {archive}; starting from step 0",
              flush=True)
    elif has_checkpoint:
        try:
            old = experiment.load_config(logdir)
        except (FileNotFoundError, ValueError) as e:
            raise StopTraining(f"{logdir} holds checkpoints but no readable config.json ({e}); "
                               "pass --restart to start over (the old run is kept)", 2) from None
        differences = experiment.structural_differences(old, config)
        if differences:
            raise StopTraining(
                f"{logdir} holds a checkpoint of a different model, so it cannot be resumed:\n  "
                + "\n  ".join(differences)
                + "\nUse another --logdir, or pass --restart to start over there (the old run is "
                "moved to an archived-* subfolder, nothing is deleted).", 2)
    experiment.save_config(logdir, config)
    return old


def fail(lines, exit_code=2):
    for line in lines:
        print(f"gan.train: error: {line}", file=sys.stderr)
    sys.exit(exit_code)


def main(argv):
    if len(argv) > 1:
        fail([f"unexpected arguments: {' '.join(argv[1:])} (flags are written --name=value)"])
    errors = validate_flags()
    if errors:
        fail(errors)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    config = run_config()
    try:
        previous = prepare_logdir(FLAGS.logdir, config)
        run = Run(config, FLAGS.logdir)
        if run.restore() and previous:
            run.apply_changed_learning_rates(previous)

        def on_signal(signum, frame):
            run.stop_signal = signal.Signals(signum).name
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)
        step = run.train()
    except data.DataError as e:
        fail([str(e)])
    except OSError as e:  # e.g. a full disk while writing samples or events
        fail([f"could not write {e.filename or FLAGS.logdir}: {e.strerror or e}. "
              f"{AFTER_WRITE_FAILURE}"])
    except StopTraining as e:
        if e.exit_code == 0:
            print(str(e), flush=True)
            sys.exit(0)
        fail(str(e).splitlines(), e.exit_code)
    print(f"Done at step {step}; logdir {FLAGS.logdir}", flush=True)


if __name__ == "__main__":
    app.run(main)
