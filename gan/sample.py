r"""Draws samples from a trained generator.

  python -m gan.sample --logdir=runs/seed --num_samples=1000 --output=samples.npy
      uint8 array [N, 28, 28] (0..255), loadable with numpy.load
  python -m gan.sample --logdir=runs/seed --num_samples=64 --output=grid.png
      a PNG grid
  python -m gan.sample --logdir=runs/seed --interpolate=8 --output=walk.png
      8 rows, each a spherical interpolation between two random latent vectors
  python -m gan.sample --logdir=runs/cond_dcgan --label=7 --output=sevens.png
      a conditional generator's samples of one class (default: one class per grid row)

Samples come from G's moving average when the run keeps one (--g_ema_decay), else from G.
"""

import io
import math

from absl import flags
import numpy as np
import tensorflow as tf

from gan import cli, files, images
from gan import config as config_lib

PROGRAM = "gan.sample"

FLAGS = flags.FLAGS
# One call of G draws every sample: 100,000 MLP samples take about 1 GB of activations.
MAX_SAMPLES = 100_000


def define_flags():
    cli.define_run_flags()
    flags.DEFINE_integer("num_samples", 64, "Number of samples.", lower_bound=1,
                         upper_bound=MAX_SAMPLES)
    flags.DEFINE_string("output", None, "Output file: .npy (uint8 [N, H, W]) or .png (a grid).")
    flags.DEFINE_integer("seed", 0, "Seed of the latent noise: the same seed gives the same "
                         "samples.", lower_bound=0, upper_bound=config_lib.SEED.high)
    flags.DEFINE_integer("interpolate", 0, "If > 0: write that many rows of latent "
                         "interpolations (--interpolation_steps images each) instead.",
                         lower_bound=0, upper_bound=MAX_SAMPLES)
    flags.DEFINE_integer("interpolation_steps", 10, "Images per interpolation row.", lower_bound=2,
                         upper_bound=MAX_SAMPLES)
    flags.DEFINE_integer("label", None, "Class of every sample, for a conditional generator; "
                         "default: row r of a grid (or of an interpolation) is class r mod the "
                         "number of classes.", lower_bound=0)
    flags.mark_flags_as_required(["logdir", "output"])


def slerp(a, b, t):
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents) between rows of a, b."""
    a_unit = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b_unit = b / np.linalg.norm(b, axis=-1, keepdims=True)
    omega = np.arccos(np.clip(np.sum(a_unit * b_unit, -1, keepdims=True), -1, 1))
    sin_omega = np.sin(omega)
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / sin_omega


def latent_noise(latent_dim, num_samples, seed, interpolate=0, steps=10, distribution="normal"):
    rng = np.random.default_rng(seed)

    def draw(shape):
        if distribution == "normal":
            return rng.standard_normal(shape)
        return rng.uniform(-1.0, 1.0, shape)
    if not interpolate:
        return draw((num_samples, latent_dim)).astype(np.float32)
    ends = draw((2, interpolate, 1, latent_dim))
    t = np.linspace(0, 1, steps)[None, :, None]
    return slerp(ends[0], ends[1], t).reshape(-1, latent_dim).astype(np.float32)


def flag_errors():
    errors = [files.check_output_path(FLAGS.output, (".npy", ".png"))]
    if FLAGS.interpolate * FLAGS.interpolation_steps > MAX_SAMPLES:
        errors.append(f"--interpolate={FLAGS.interpolate} x --interpolation_steps="
                      f"{FLAGS.interpolation_steps} = {FLAGS.interpolate * FLAGS.interpolation_steps}"
                      f" images; expected at most {MAX_SAMPLES:,}")
    return [e for e in errors if e]


def main(argv):
    del argv
    errors = flag_errors()
    if errors:
        cli.fail(PROGRAM, errors)
    output = FLAGS.output
    config, state, _ = cli.load_run_from_flags()
    generator = state.sampling_generator
    if FLAGS.label is not None and not generator.num_classes:
        cli.fail(PROGRAM, [f"--label={FLAGS.label}: {FLAGS.logdir} holds an unconditional "
                           "generator; expected no --label (or a run trained with "
                           "--conditional)"])
    if FLAGS.label is not None and FLAGS.label >= generator.num_classes:
        cli.fail(PROGRAM, [f"--label={FLAGS.label}: expected a class in [0, "
                           f"{generator.num_classes - 1}]"])
    noise = latent_noise(config.model.latent_dim, FLAGS.num_samples, FLAGS.seed, FLAGS.interpolate,
                         FLAGS.interpolation_steps, config.model.latent_distribution)
    if FLAGS.interpolate:
        rows, cols = FLAGS.interpolate, FLAGS.interpolation_steps
    else:
        cols = math.ceil(math.sqrt(len(noise)))
        rows = math.ceil(len(noise) / cols)
    labels = None
    if generator.num_classes:
        labels = (np.full(len(noise), FLAGS.label, np.int32) if FLAGS.label is not None
                  else images.row_labels(rows, cols, generator.num_classes)[:len(noise)])
        labels = tf.constant(labels)
    samples = images.to_uint8(
        generator(tf.constant(noise), training=False, labels=labels).numpy())
    if output.endswith(".npy"):
        array = samples[..., 0] if samples.shape[-1] == 1 else samples
        buffer = io.BytesIO()
        np.save(buffer, array)
        files.write_atomically(output, buffer.getvalue())
    else:
        images.write_png(output, images.make_grid(samples, rows, cols))
    print(f"wrote {len(samples)} samples to {output}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, PROGRAM)
