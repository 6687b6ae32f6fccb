r"""Trains a GAN: `python -m gan.train --flagfile=experiments/seed.flags --logdir=runs/seed`.

Leaves in --logdir: TensorBoard event files (scalars, the sample grid, the flags as text),
samples/step_NNNNNN.png from one fixed noise batch, checkpoints/ (tf.train.CheckpointManager) and
config.json. Rerunning the same command resumes from the latest checkpoint.
"""

import os
import sys
import time

from absl import app, flags
import numpy as np
import tensorflow as tf

from gan import data, experiment, images, losses, networks, optimizers, trainer

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
flags.DEFINE_integer("grid_size", 5, "Sample grid is grid_size x grid_size (the seed's 5x5).")
flags.DEFINE_integer("steps_per_loop", 100, "Iterations per compiled call; logging, samples and "
                     "checkpoints still happen at their exact steps.")
flags.DEFINE_boolean("jit_compile", True, "Compile the training loop with XLA.")
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
    return {name: sum(float(metrics[name]) * count for metrics, count in window) / total
            for name in window[0][0]}


def next_boundary(step, every):
    return (step // every + 1) * every


class Run:
    """One training run: state, compiled trainer, writers; `train()` drives the loop."""

    def __init__(self, config, logdir):
        self.config = config
        self.logdir = logdir
        dataset = data.load(config["dataset"], "train", FLAGS.data_dir)
        self.state = experiment.make_state(config)
        self.trainer = trainer.Trainer(self.state, experiment.trainer_config(config),
                                       dataset.images, jit_compile=FLAGS.jit_compile)
        self.checkpoint = tf.train.Checkpoint(state=self.state)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, experiment.checkpoint_dir(logdir),
            max_to_keep=FLAGS.keep_checkpoints, step_counter=self.state.step)
        self.writer = tf.summary.create_file_writer(logdir)
        self.noise = fixed_noise(config, FLAGS.grid_size ** 2)

    def restore(self):
        path = experiment.restore(self.state, self.logdir)
        if path:
            print(f"Resumed from {path} at step {int(self.state.step.numpy())}", flush=True)
        return path

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

    def train(self):
        num_steps = self.config["num_steps"]
        step = int(self.state.step.numpy())
        if step == 0:
            with self.writer.as_default(step=0):
                tf.summary.text("flags", "```\n" + FLAGS.flags_into_string() + "\n```")
        last_log_time, last_log_step, start_time, start_step = time.time(), step, time.time(), step
        window = []  # (metric means of one call, its iteration count) since the last log
        while step < num_steps:
            chunk_end = min(num_steps, step + FLAGS.steps_per_loop,
                            next_boundary(step, FLAGS.log_every),
                            next_boundary(step, FLAGS.sample_every),
                            next_boundary(step, FLAGS.checkpoint_every))
            window.append((self.trainer.run(chunk_end - step), chunk_end - step))
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
            if step % FLAGS.checkpoint_every == 0 or step == num_steps:
                self.manager.save(checkpoint_number=step)
        self.writer.flush()
        return step


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    config = run_config()
    experiment.save_config(FLAGS.logdir, config)
    run = Run(config, FLAGS.logdir)
    run.restore()
    step = run.train()
    print(f"Done at step {step}; logdir {FLAGS.logdir}", flush=True)


if __name__ == "__main__":
    app.run(main)
