r"""Exports a trained generator as a SavedModel: `python -m gan.export --logdir=runs/seed --output=DIR`.

The SavedModel needs only TensorFlow to use:
    model = tf.saved_model.load(DIR)
    images = model.generate(tf.random.normal([16, model.latent_dim]))   # uint8 [16, 28, 28, 1]
or through the serving signature: model.signatures["serving_default"](noise=...)["images"].
A conditional generator takes the classes too (int32 [N]):
    images = model.generate(noise, tf.constant([3] * 16))
    model.signatures["serving_default"](noise=..., labels=...)["images"]
The exported generator is G's moving average when the run keeps one (--g_ema_decay), else G.
`model.num_classes` is 0 for an unconditional generator.
"""

from absl import flags
import tensorflow as tf

from gan import cli, files

PROGRAM = "gan.export"

FLAGS = flags.FLAGS


class ExportedGenerator(tf.Module):
    """noise [N, latent_dim] float32 (and, if conditional, labels [N] int32) -> uint8 images
    [N, H, W, C], G in inference mode."""

    def __init__(self, generator, latent_dim):
        super().__init__(name="exported_generator")
        self.generator = generator
        self.latent_dim = tf.Variable(latent_dim, trainable=False, name="latent_dim")
        self.num_classes = tf.Variable(generator.num_classes, trainable=False, name="num_classes")
        noise = tf.TensorSpec([None, latent_dim], tf.float32, name="noise")
        if generator.num_classes:
            self.generate = tf.function(
                self._generate, input_signature=[noise, tf.TensorSpec([None], tf.int32,
                                                                      name="labels")],
                autograph=False)
        else:
            self.generate = tf.function(self._generate, input_signature=[noise], autograph=False)

    def _generate(self, noise, labels=None):
        images = self.generator(noise, training=False, labels=labels)
        return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0, 255), tf.uint8)


def export(generator, latent_dim, output):
    module = ExportedGenerator(generator, latent_dim)
    noise = tf.TensorSpec([None, latent_dim], tf.float32, name="noise")
    if generator.num_classes:
        signature = tf.function(
            lambda noise, labels: {"images": module.generate(noise, labels)},
            input_signature=[noise, tf.TensorSpec([None], tf.int32, name="labels")],
            autograph=False)
    else:
        signature = tf.function(lambda noise: {"images": module.generate(noise)},
                                input_signature=[noise], autograph=False)
    tf.saved_model.save(module, output, signatures={"serving_default": signature})
    return module


def main(argv):
    del argv
    error = files.check_output_dir(FLAGS.output)
    if error:
        cli.fail(PROGRAM, [error])
    config, state, path = cli.load_run_from_flags()
    export(state.sampling_generator, config.model.latent_dim, FLAGS.output)
    print(f"exported the {state.sampling_generator_name} generator of {path} to {FLAGS.output}")


def define_flags():
    cli.define_run_flags()
    flags.DEFINE_string("output", None, "Directory to write the SavedModel to.")
    flags.mark_flags_as_required(["logdir", "output"])


if __name__ == "__main__":
    define_flags()
    cli.run(main, PROGRAM)
