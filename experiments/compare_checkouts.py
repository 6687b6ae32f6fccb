"""Bit-identity of two checkouts: trains the same runs with each and compares what they leave.

    python experiments/compare_checkouts.py OLD_CHECKOUT NEW_CHECKOUT --workdir=/tmp/bitid

Each checkout (a directory holding a `gan/` package, e.g. a `git worktree` of a commit) trains
every flagfile of --configs for --steps steps, with an evaluation at the last step, in
<workdir>/<checkout's directory name>/<config>/ (a run already finished there is reused, so
a checkout can be trained once and compared with several others; --retrain_new trains the new
one again). Then, for each configuration, it compares
  - every variable of the final checkpoint (weights, optimizer slots, RNG state, step), bitwise;
  - every logged scalar except the timing ones (perf/*), bitwise, at every step;
  - every sample grid PNG, byte for byte.
Exit code 0 when everything is identical, 1 otherwise. Both trainings run on this machine,
one after the other, each with its own XLA cache directory, so nothing compiled by one is reused
by the other.
"""

import argparse
import glob
import os
import subprocess
import sys

CONFIGS = ("seed", "mnist_mlp", "mlp_wgan_gp", "mlp_ns_r1", "dcgan", "cond_dcgan")
UNTIMED = ("perf/",)


def train(checkout, config, steps, logdir, cache_dir):
    """Trains experiments/<config>.flags of `checkout` with its own package, from its own root
    (the flagfiles include each other by relative path)."""
    if os.path.exists(os.path.join(logdir, "done")):
        return
    command = [sys.executable, "-m", "gan.train", f"--flagfile=experiments/{config}.flags",
               f"--logdir={logdir}", f"--num_steps={steps}", f"--eval_every={steps}",
               "--eval_num_samples=1000", f"--xla_cache_dir={cache_dir}", "--restart"]
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    subprocess.run(command, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    open(os.path.join(logdir, "done"), "w").close()


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # set after the trainings: theirs is quiet
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # the checkpoint reader's INFO lines


def checkpoint_values(logdir):
    _quiet_tensorflow()
    import tensorflow as tf
    path = tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def scalars(logdir):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2
    found = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag.startswith(UNTIMED) or not value.HasField("tensor"):
                    continue
                if value.metadata.plugin_data.plugin_name != "scalars":
                    continue
                found[(value.tag, event.step)] = tf.make_ndarray(value.tensor)
    return found


def pngs(logdir):
    return {os.path.basename(path): open(path, "rb").read()
            for path in sorted(glob.glob(os.path.join(logdir, "samples", "*.png")))}


def differences(old, new):
    """Lines naming every difference between two run directories."""
    lines = []
    for what, read in (("variable", checkpoint_values), ("scalar", scalars), ("sample", pngs)):
        a, b = read(old), read(new)
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                lines.append(f"{what} {key}: only in {'new' if key in b else 'old'}")
            elif isinstance(a[key], bytes):
                if a[key] != b[key]:
                    lines.append(f"{what} {key}: bytes differ")
            elif a[key].shape != b[key].shape or a[key].tobytes() != b[key].tobytes():
                lines.append(f"{what} {key}: values differ")
    return lines


def counts(logdir):
    return (len(checkpoint_values(logdir)), len(scalars(logdir)), len(pngs(logdir)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--retrain_new", action="store_true")
    args = parser.parse_args()
    identical = True
    for config in args.configs.split(","):
        dirs = {}
        for label, checkout in (("old", args.old), ("new", args.new)):
            folder = os.path.join(os.path.abspath(args.workdir),
                                  os.path.basename(os.path.abspath(checkout)))
            dirs[label] = os.path.join(folder, config)
            done = os.path.join(dirs[label], "done")
            if label == "new" and args.retrain_new and os.path.exists(done):
                os.remove(done)
            train(checkout, config, args.steps, dirs[label], os.path.join(folder, "xla_cache"))
        lines = differences(dirs["old"], dirs["new"])
        variables, logged, samples = counts(dirs["old"])
        verdict = "identical" if not lines else f"{len(lines)} differences"
        print(f"{config:12s} {args.steps} steps: {variables} checkpoint variables, {logged} "
              f"logged scalars, {samples} sample grids: {verdict}", flush=True)
        for line in lines[:20]:
            print(f"    {line}")
        identical &= not lines
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
