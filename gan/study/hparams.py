"""A study in TensorBoard's HParams dashboard: its configuration at the root, each run's values
in its logdir."""

import os

import tensorflow as tf

from gan import events
from gan import evaluator as evaluator_lib


def _hparams(study):
    from tensorboard.plugins.hparams import api as hp
    result = []
    for axis in study.axes:
        values = [axis.hparam_value(label) for label, _ in axis.choices]
        result.append(hp.HParam(axis.name, hp.Discrete(values)))
    result.append(hp.HParam("seed", hp.Discrete(list(study.seeds))))
    return result


def write_hparams_config(root, study):
    """The study's HParams configuration, in an event file at the root. An earlier one of the
    report's own (an event file of HParams summaries alone) is replaced; any other event file
    there is left as it is."""
    from tensorboard.plugins.hparams import api as hp
    folder = root
    for path in events.event_files(folder):
        if events.holds_only(path, "hparams"):
            os.remove(path)
    metrics = [hp.Metric(f"eval/{name}", display_name=name)
               for name in evaluator_lib.metric_names(reported=True)]
    metrics.append(hp.Metric("perf/steps_per_sec", display_name="steps/s"))
    writer = tf.summary.create_file_writer(folder)
    with writer.as_default():
        hp.hparams_config(hparams=_hparams(study), metrics=metrics)
    writer.close()
    return folder


def write_run_hparams(run_dir, run):
    """The run's values of the swept settings, in its own logdir (step 0, which a resumed
    training never purges)."""
    from tensorboard.plugins.hparams import api as hp
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default(step=0):
        hp.hparams({**dict(run.hparams), "seed": run.seed}, trial_id=run.name)
    writer.close()
