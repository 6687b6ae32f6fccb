"""The Keras tutorial's MLP GAN training loop, kept as a yardstick for experiments/benchmark.py.

A faithful copy of the seed's code (Keras Sequential models, binary cross-entropy, SGD, batch 32,
`train_on_batch` on real then fake, `generator.predict` for the fakes, a combined model with D frozen).
Keras is used here and in tests only, never inside gan/.

    python experiments/keras_seed.py --iterations=200
prints one JSON line: {"iterations": N, "seconds": S, "iterations_per_sec": R}.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200, help="Timed iterations.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed iterations first.")
    parser.add_argument("--batch_size", type=int, default=32, help="The seed's batch size.")
    args = parser.parse_args()

    x_train = data.load("mnist", "train").images  # the seed's X / 127.5 - 1, NHWC

    discriminator = build_discriminator()
    discriminator.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(),
                          metrics=["accuracy"])
    generator = build_generator()
    z = keras.Input((LATENT_DIM,))
    discriminator.trainable = False
    combined = keras.Model(z, discriminator(generator(z)))
    combined.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD())

    batch = args.batch_size
    valid, fake = np.ones((batch, 1)), np.zeros((batch, 1))

    def iteration():
        idx = np.random.randint(0, x_train.shape[0], batch)
        imgs = x_train[idx]
        noise = np.random.normal(0, 1, (batch, LATENT_DIM))
        gen_imgs = generator.predict(noise, verbose=0)
        d_loss_real = discriminator.train_on_batch(imgs, valid)
        d_loss_fake = discriminator.train_on_batch(gen_imgs, fake)
        noise = np.random.normal(0, 1, (batch, LATENT_DIM))
        g_loss = combined.train_on_batch(noise, valid)
        return 0.5 * np.add(d_loss_real, d_loss_fake), g_loss

    for _ in range(args.warmup):
        iteration()
    start = time.perf_counter()
    for _ in range(args.iterations):
        iteration()
    seconds = time.perf_counter() - start
    print(json.dumps({"iterations": args.iterations, "seconds": seconds,
                      "iterations_per_sec": args.iterations / seconds}))


if __name__ == "__main__":
    main()
