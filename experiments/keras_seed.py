"""The Keras tutorial's MLP GAN training loop, kept as a yardstick for experiments/benchmark.py.

A faithful copy of the seed's code (Keras Sequential models, binary cross-entropy, SGD, batch 32,
`train_on_batch` on real then fake, `generator.predict` for the fakes, a combined model with D frozen).
Keras is used here and in tests only, never inside gan/.

    python experiments/keras_seed.py --iterations=200
prints one JSON line: {"iterations": N, "seconds": S, "iterations_per_sec": R}.

As a reference row of an ablation study (experiments/ablations/seed_quirks.toml), it trains the
whole 10,000 iterations and writes samples for `python -m gan.evaluate --samples`:

    python experiments/keras_seed.py --warmup=0 --iterations=10000 --seed=0 --optimizer=sgd \
        --samples_out=samples.npy
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gan  # noqa: E402,F401  (its quiet console, installed before TensorFlow loads)

try:
    import keras
    from keras import layers
except ImportError:  # a yardstick, not a requirement: benchmark.py reports the row as skipped
    print("keras_seed.py: Keras is not installed; skipped (pip install keras to run it)",
          file=sys.stderr)
    sys.exit(3)
import numpy as np  # noqa: E402

from gan import data  # noqa: E402  (only to read the same MNIST files)

LATENT_DIM = 100
IMG_SHAPE = (28, 28, 1)


def build_generator():
    return keras.Sequential([
        keras.Input((LATENT_DIM,)),
        layers.Dense(256), layers.LeakyReLU(negative_slope=0.2), layers.BatchNormalization(momentum=0.8),
        layers.Dense(512), layers.LeakyReLU(negative_slope=0.2), layers.BatchNormalization(momentum=0.8),
        layers.Dense(1024), layers.LeakyReLU(negative_slope=0.2), layers.BatchNormalization(momentum=0.8),
        layers.Dense(int(np.prod(IMG_SHAPE)), activation="tanh"),
        layers.Reshape(IMG_SHAPE),
    ])


def build_discriminator():
    return keras.Sequential([
        keras.Input(IMG_SHAPE),
        layers.Flatten(),
        layers.Dense(512), layers.LeakyReLU(negative_slope=0.2),
        layers.Dense(256), layers.LeakyReLU(negative_slope=0.2),
        layers.Dense(1, activation="sigmoid"),
    ])


# The tutorial (Keras 2) sets discriminator.trainable = False once, after compiling D and before
# compiling the combined model: Keras 2 fixed each model's trainable weights at compile time, so
# D still trained in its own train_on_batch. Keras 3 reads `trainable` at every train step, so that
# one line freezes D everywhere (its train_on_batch warns "The model does not have any trainable
# weights") and G then fools a D that never learns. Setting the flag around each step restores the
# tutorial's behaviour under both.
def build_combined(generator, discriminator, optimizer):
    z = keras.Input((LATENT_DIM,))
    discriminator.trainable = False
    combined = keras.Model(z, discriminator(generator(z)))
    combined.compile(loss="binary_crossentropy", optimizer=optimizer)
    return combined


def train_discriminator(discriminator, real, fake_images, valid, fake):
    discriminator.trainable = True
    loss_real = discriminator.train_on_batch(real, valid)
    loss_fake = discriminator.train_on_batch(fake_images, fake)
    return loss_real, loss_fake


def train_generator(combined, discriminator, noise, valid):
    discriminator.trainable = False
    return combined.train_on_batch(noise, valid)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200, help="Timed iterations.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed iterations first.")
    parser.add_argument("--batch_size", type=int, default=32, help="The seed's batch size.")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                        help="sgd: the tutorial's keras.optimizers.SGD(); adam: Adam(2e-4, "
                        "beta_1=0.5), as in mnist_mlp.flags.")
    parser.add_argument("--seed", type=int, default=None, help="Seeds Keras, NumPy and Python.")
    parser.add_argument("--samples_out", default=None, help="After training, write "
                        "--num_samples generated images here as uint8 [N, 28, 28] .npy (for "
                        "`python -m gan.evaluate --samples`).")
    parser.add_argument("--num_samples", type=int, default=10000, help="Samples to write.")
    args = parser.parse_args()
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)

    x_train = data.load("mnist", "train").images  # the seed's X / 127.5 - 1, NHWC

    discriminator = build_discriminator()
    def optimizer():
        if args.optimizer == "adam":
            return keras.optimizers.Adam(2e-4, beta_1=0.5)
        return keras.optimizers.SGD()

    discriminator.compile(loss="binary_crossentropy", optimizer=optimizer(),
                          metrics=["accuracy"])
    generator = build_generator()
    combined = build_combined(generator, discriminator, optimizer())

    batch = args.batch_size
    valid, fake = np.ones((batch, 1)), np.zeros((batch, 1))

    def iteration():
        idx = np.random.randint(0, x_train.shape[0], batch)
        imgs = x_train[idx]
        noise = np.random.normal(0, 1, (batch, LATENT_DIM))
        gen_imgs = generator.predict(noise, verbose=0)
        d_loss_real, d_loss_fake = train_discriminator(discriminator, imgs, gen_imgs, valid, fake)
        noise = np.random.normal(0, 1, (batch, LATENT_DIM))
        g_loss = train_generator(combined, discriminator, noise, valid)
        return 0.5 * np.add(d_loss_real, d_loss_fake), g_loss

    for _ in range(args.warmup):
        iteration()
    start = time.perf_counter()
    for _ in range(args.iterations):
        iteration()
    seconds = time.perf_counter() - start
    print(json.dumps({"iterations": args.iterations, "seconds": seconds,
                      "iterations_per_sec": args.iterations / seconds}), flush=True)
    if args.samples_out:
        noise = np.random.normal(0, 1, (args.num_samples, LATENT_DIM))
        samples = generator.predict(noise, batch_size=1000, verbose=0)[..., 0]
        uint8 = np.clip(np.rint((samples + 1.0) * 127.5), 0, 255).astype(np.uint8)
        partial = args.samples_out + ".partial.npy"
        np.save(partial, uint8)
        os.replace(partial, args.samples_out)  # a killed run leaves no half-written samples
        print(f"wrote {args.samples_out}: {list(uint8.shape)} uint8", flush=True)


if __name__ == "__main__":
    main()
