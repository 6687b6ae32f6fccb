"""The seed's networks and gan's joint training step in PyTorch (eager), as a speed yardstick for
experiments/benchmark.py. PyTorch is used here only, never inside gan/; without it this script
exits with one line.

The step is the one of benchmark.py's "gan b32 (joint D step)" row: G (Dense 256, 512, 1024, each
LeakyReLU 0.2 then BatchNorm with Keras' momentum 0.8 = PyTorch's 0.2 and epsilon 1e-3; Dense 784,
tanh) and D (Dense 512, 256, LeakyReLU 0.2; Dense 1, logits). One D update on the binary
cross-entropy of real and fake stacked in one batch (fakes from G in training mode, detached), then
one G update on the non-saturating loss with fresh noise, D's weights frozen so that no gradient
is computed for them. Batches are drawn with replacement from MNIST's 60,000 training images.

    python experiments/torch_seed.py --iterations=200 --optimizer=sgd
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
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads (default: every core, as TensorFlow uses).")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    # TensorFlow flushes denormal floats to zero on its CPU threads; without this PyTorch's Adam
    # slows down many times as its second moments decay into the denormal range.
    torch.set_flush_denormal(True)

    images = torch.from_numpy(data.load("mnist", "train").images.reshape(-1, IMAGE_SIZE).copy())
    generator, discriminator = build_generator(), build_discriminator()
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
        return d_loss

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
