"""The seed's networks, or dcgan.flags' DCGAN, and gan's joint training step in PyTorch (eager), as
a speed yardstick for experiments/benchmark.py. PyTorch is used here only, never inside gan/;
without it this script exits with one line.

--architecture=mlp (the default) is the step of benchmark.py's "gan b32 (joint D step)" row: G
(Dense 256, 512, 1024, each LeakyReLU 0.2 then BatchNorm with Keras' momentum 0.8 = PyTorch's 0.2
and epsilon 1e-3; Dense 784, tanh) and D (Dense 512, 256, LeakyReLU 0.2; Dense 1, logits). One D
update on the binary cross-entropy of real and fake stacked in one batch (fakes from G in training
mode, detached), then one G update on the non-saturating loss with fresh noise, D's weights frozen
so that no gradient is computed for them. Batches are drawn with replacement from MNIST's 60,000
training images.

--architecture=dcgan is gan.networks' DCGAN at --width (dcgan.flags: 32) with the same step, the
one of benchmark.py's "dcgan w32 b64" rows: G = Dense(7*7*4w, no bias) -> BatchNorm -> ReLU ->
ConvT(2w, 5, stride 2, no bias) -> BatchNorm -> ReLU -> ConvT(1, 5, stride 2) -> tanh, with
dcgan.flags' BatchNorm momentum 0.9 (PyTorch's 0.1); D = Conv(w, 5, s2) -> LReLU 0.2 ->
Conv(2w, 5, s2) -> LReLU 0.2 -> Dense 1. Each 5x5 convolution pads 2 on every side where
TensorFlow's SAME pads 1 then 2: the same shapes and the same multiply-adds. The tensors are
channels-last (PyTorch's faster CPU layout for these convolutions, as gan's NHWC is).

    python experiments/torch_seed.py --iterations=200 --optimizer=sgd
    python experiments/torch_seed.py --architecture=dcgan --batch_size=64 --optimizer=adam
prints one JSON line: {"iterations": N, "seconds": S, "iterations_per_sec": R, "torch": version}.
"""

import argparse
import json
import os
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    print("torch_seed.py: PyTorch is not installed; skipped (pip install torch to run it)",
          file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan import data  # noqa: E402  (only to read the same MNIST files)

LATENT_DIM = 100
IMAGE_SIZE = 784


def build_generator():
    blocks = []
    fan_in = LATENT_DIM
    for width in (256, 512, 1024):
        blocks += [nn.Linear(fan_in, width), nn.LeakyReLU(0.2),
                   nn.BatchNorm1d(width, eps=1e-3, momentum=0.2)]
        fan_in = width
    return nn.Sequential(*blocks, nn.Linear(fan_in, IMAGE_SIZE), nn.Tanh())


def build_discriminator():
    return nn.Sequential(nn.Linear(IMAGE_SIZE, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256),
                         nn.LeakyReLU(0.2), nn.Linear(256, 1))


def build_dcgan(width):
    """(G, D) of gan.networks' DCGAN for 28x28x1 images, BatchNorm in G only (dcgan.flags)."""
    def batchnorm(channels):
        return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.1)
    generator = nn.Sequential(
        nn.Linear(LATENT_DIM, 7 * 7 * 4 * width, bias=False),
        nn.Unflatten(1, (4 * width, 7, 7)), batchnorm(4 * width), nn.ReLU(),
        nn.ConvTranspose2d(4 * width, 2 * width, 5, stride=2, padding=2, output_padding=1,
                           bias=False), batchnorm(2 * width), nn.ReLU(),
        nn.ConvTranspose2d(2 * width, 1, 5, stride=2, padding=2, output_padding=1), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(1, width, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(7 * 7 * 2 * width, 1))
    return (generator.to(memory_format=torch.channels_last),
            discriminator.to(memory_format=torch.channels_last))


def build(args):
    """(G, D, the training images as D takes them)."""
    images = data.load("mnist", "train").images
    if args.architecture == "mlp":
        return (build_generator(), build_discriminator(),
                torch.from_numpy(images.reshape(-1, IMAGE_SIZE).copy()))
    # NHWC in memory, NCHW in shape: PyTorch's channels_last.
    nchw = torch.from_numpy(images.reshape(-1, 28, 28, 1).copy()).permute(0, 3, 1, 2)
    return (*build_dcgan(args.width), nchw)


def make_optimizer(name, parameters):
    # fused: PyTorch's fastest CPU implementation; its default (foreach) Adam step is an order
    # of magnitude slower on CPU for matrices of G's sizes.
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=0.01, fused=True)
    return torch.optim.Adam(parameters, lr=2e-4, betas=(0.5, 0.999), eps=1e-7, fused=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200, help="Timed iterations.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed iterations first.")
    parser.add_argument("--batch_size", type=int, default=32, help="Real images per D update.")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                        help="sgd: lr 0.01 (the seed's); adam: lr 2e-4, beta1 0.5.")
    parser.add_argument("--architecture", choices=["mlp", "dcgan"], default="mlp",
                        help="mlp: the seed's networks; dcgan: gan.networks' DCGAN.")
    parser.add_argument("--width", type=int, default=32,
                        help="The DCGAN's width (dcgan.flags' --dcgan_width).")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads (default: every core, as TensorFlow uses).")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    # TensorFlow flushes denormal floats to zero on its CPU threads; without this PyTorch's Adam
    # slows down many times as its second moments decay into the denormal range.
    torch.set_flush_denormal(True)

    generator, discriminator, images = build(args)
    g_opt = make_optimizer(args.optimizer, generator.parameters())
    d_opt = make_optimizer(args.optimizer, discriminator.parameters())
    bce = nn.BCEWithLogitsLoss()
    batch = args.batch_size
    targets = torch.cat([torch.ones(batch, 1), torch.zeros(batch, 1)])
    ones = torch.ones(batch, 1)

    def iteration():
        real = images[torch.randint(len(images), (batch,))]
        with torch.no_grad():
            fake = generator(torch.randn(batch, LATENT_DIM))
        d_opt.zero_grad(set_to_none=True)
        # mean over 2B of the stacked batch = (mean over real + mean over fake) / 2; times 2 is
        # the joint loss's real_term + fake_term.
        d_loss = 2 * bce(discriminator(torch.cat([real, fake])), targets)
        d_loss.backward()
        d_opt.step()

        discriminator.requires_grad_(False)
        g_opt.zero_grad(set_to_none=True)
        g_loss = bce(discriminator(generator(torch.randn(batch, LATENT_DIM))), ones)
        g_loss.backward()
        g_opt.step()
        discriminator.requires_grad_(True)
        return d_loss.detach()

    for _ in range(args.warmup):
        iteration()
    start = time.perf_counter()
    for _ in range(args.iterations):
        loss = iteration()
    float(loss)
    seconds = time.perf_counter() - start
    print(json.dumps({"iterations": args.iterations, "seconds": seconds,
                      "iterations_per_sec": args.iterations / seconds,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
