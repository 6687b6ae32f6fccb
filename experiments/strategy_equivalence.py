r"""Does a tf.distribute strategy compute what one device computes? For a set of training
recipes, runs the same compiled iterations from the same seed on one device and under
MirroredStrategy, and prints the largest difference of any weight and any metric.

    python experiments/strategy_equivalence.py                  # 2 logical CPUs (any machine)
    python experiments/strategy_equivalence.py --devices=gpu    # every visible GPU

Both sides run without XLA (the strategy path does), since XLA's random kernels draw other
numbers than TensorFlow's. Expect float rounding (1e-8 to 1e-5) everywhere except the recipes with
WGAN-GP or DRAGAN, whose noise each replica draws from its own stream (see gan/step.py).
"""

import sys

from absl import app, flags
import numpy as np
import tensorflow as tf

FLAGS = flags.FLAGS
flags.DEFINE_enum("devices", "cpu", ["cpu", "gpu"], "cpu: split the CPU into --replicas logical "
                  "devices; gpu: every visible GPU.")
flags.DEFINE_integer("replicas", 2, "Logical CPU devices with --devices=cpu.", lower_bound=2)
flags.DEFINE_integer("iterations", 3, "Training iterations compared.", lower_bound=1)

# name -> settings over the defaults (batch sizes divide by 2, 4 and 8 replicas).
RECIPES = {
    "seed (split D, inference-mode fakes, SGD)": dict(
        d_update="split", d_fake_batchnorm="inference", g_optimizer="sgd", d_optimizer="sgd",
        g_learning_rate=0.01, d_learning_rate=0.01, batch_size=32),
    "mnist_mlp (joint, Adam)": dict(batch_size=32),
    "R1, split D update": dict(d_update="split", r1_weight=1.0, batch_size=16),
    "RaGAN (global batch means)": dict(d_loss="relativistic_average",
                                       g_loss="relativistic_average", batch_size=16),
    "lazy R1, BatchNorm in D": dict(r1_weight=1.0, penalty_every=2, d_norm="batch",
                                    batch_size=16),
    "conditional, spectral norm in D, G's average": dict(
        conditional=True, d_norm="spectral", batch_size=16, g_ema_decay=0.9),
    "DCGAN width 8": dict(architecture="dcgan", dcgan_width=8, batch_size=8),
    "WGAN-GP (per-replica noise: differs)": dict(d_loss="wasserstein", g_loss="wasserstein",
                                                 gp_weight=10.0, batch_size=16),
}


def main(argv):
    del argv
    if FLAGS.devices == "cpu":
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration() for _ in range(FLAGS.replicas)])
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    else:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
        if len(devices) < 2:
            sys.exit(f"--devices=gpu: found {len(devices)} GPU(s); expected at least 2")
    from gan import build, data
    from gan import config as config_lib
    from gan import step as step_lib
    tf.get_logger().setLevel("ERROR")  # each recipe traces its own loop: retracing is expected
    strategy = tf.distribute.MirroredStrategy(devices)
    dataset = data.load("mnist", "train")
    print(f"{strategy.num_replicas_in_sync} replicas on {', '.join(devices)}; "
          f"{FLAGS.iterations} iterations each")
    print(f"{'recipe':<48} {'max |weight diff|':>18} {'max |metric diff|':>18}")
    for name, settings in RECIPES.items():
        run = config_lib.RunConfig().replace(**settings).validate()
        results = []
        for where in (tf.distribute.get_strategy(), strategy):
            with where.scope():
                state = build.make_state(run)
            loop = step_lib.Trainer(state, run, dataset.images,
                                    dataset.labels, jit_compile=False, strategy=where)
            metrics = loop.run(FLAGS.iterations)
            results.append(([v.numpy() for v in state.variables],
                            {key: float(value) for key, value in metrics.items()}))
        (one_weights, one_metrics), (many_weights, many_metrics) = results
        weights = max(float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                      for a, b in zip(one_weights, many_weights))
        metrics = max(abs(one_metrics[key] - many_metrics[key]) for key in one_metrics)
        print(f"{name:<48} {weights:>18.3g} {metrics:>18.3g}", flush=True)


if __name__ == "__main__":
    app.run(main)
