r"""Plots TensorBoard scalars of several runs side by side, one panel per tag, as a PNG.

    python experiments/plot_scalars.py --runs=runs/sat,runs/ns --labels=saturating,non-saturating \
        --tags=train/g_logit_grad,train/g_grad_norm --output=docs/saturating_vs_non_saturating.png

Needs matplotlib, an optional extra of the project: pip install -e ".[plots]".
"""

import glob
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "Run directories (each holding events.out.tfevents.* files).")
flags.DEFINE_list("labels", None, "A legend label per run; default: the directory names.")
flags.DEFINE_list("tags", ["train/g_grad_norm"], "Scalar tags to plot, one panel each.")
flags.DEFINE_string("output", None, "PNG file to write.")
flags.DEFINE_string("title", None, "Figure title.")
flags.DEFINE_boolean("log_y", True, "Logarithmic y axes.")
flags.mark_flags_as_required(["runs", "output"])


def read_scalars(logdir):
    """{tag: ([steps], [values])} of every scalar in a run's event files, in step order."""
    import tensorflow as tf
    series = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name in ("images", "text"):
                    continue
                series.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return {tag: (sorted(points), [points[s] for s in sorted(points)])
            for tag, points in series.items()}


def usage_errors():
    errors = []
    labels = FLAGS.labels or []
    if labels and len(labels) != len(FLAGS.runs):
        errors.append(f"--labels has {len(labels)} entries but --runs has {len(FLAGS.runs)}; "
                      "expected one label per run")
    for run in FLAGS.runs:
        if not glob.glob(os.path.join(run, "events.out.tfevents.*")):
            errors.append(f"--runs: {run} holds no events.out.tfevents.* file; expected a "
                          "logdir written by gan.train")
    if not FLAGS.output.endswith(".png"):
        errors.append(f"--output={FLAGS.output}: expected a .png file")
    return errors


def main(argv):
    del argv
    errors = usage_errors()
    if errors:
        for line in errors:
            print(f"plot_scalars: error: {line}", file=sys.stderr)
        sys.exit(2)
    try:
        import matplotlib
    except ImportError:
        print("plot_scalars: error: matplotlib is not installed; pip install -e \".[plots]\"",
              file=sys.stderr)
        sys.exit(2)
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = FLAGS.labels or [os.path.basename(os.path.normpath(r)) for r in FLAGS.runs]
    runs = [read_scalars(run) for run in FLAGS.runs]
    figure, axes = plt.subplots(1, len(FLAGS.tags), figsize=(5 * len(FLAGS.tags), 3.6),
                                squeeze=False)
    for axis, tag in zip(axes[0], FLAGS.tags):
        for label, scalars in zip(labels, runs):
            if tag in scalars:
                axis.plot(*scalars[tag], label=label)
        axis.set_title(tag)
        axis.set_xlabel("step")
        if FLAGS.log_y:
            axis.set_yscale("log")
        axis.grid(True, alpha=0.3)
        axis.legend()
    if FLAGS.title:
        figure.suptitle(FLAGS.title)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    figure.savefig(FLAGS.output, dpi=100)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
