"""A run's TensorBoard event files: reading its scalars back, and purging the steps that a resumed
or rolled-back training is about to write again.

A training killed after its last checkpoint has already logged the steps past that checkpoint;
resumed, it logs them again. TensorBoard's loaders guess at such repeats (per tag, when a step goes
backwards), and scripts that read events see both. `purge_after(logdir, step)` instead removes
the orphaned records from the files themselves before anything is written again, so every reader
sees each step once. Each file is rewritten to a temporary name and renamed over the original, so
a crash during the purge loses nothing.
"""

import glob
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.util import event_pb2


def event_files(logdir):
    """The logdir's own event files (not those of subdirectories), in TensorBoard's read order."""
    return sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))


def _records(path):
    # A file cut short by a kill ends in a partial record; everything before it is intact.
    try:
        for record in tf.data.TFRecordDataset(path):
            yield record.numpy()
    except tf.errors.DataLossError:
        return


def holds_only(path, plugin):
    """Whether the event file at `path` holds summaries of `plugin` alone (besides its header):
    how a report recognises the HParams file it wrote itself, before replacing it."""
    found = False
    for record in _records(path):
        try:
            event = event_pb2.Event.FromString(record)
        except Exception:  # noqa: BLE001 -- protobuf's DecodeError: not an event file of ours
            return False
        if event.HasField("summary"):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != plugin:
                    return False
                found = True
        elif not event.HasField("file_version"):
            return False
    return found


# The tags gan.train and gan.ablate write; an event file with any other tag is not the project's.
OWN_TAG_PREFIXES = ("train/", "eval/", "perf/", "samples", "flags", "rollback", "_hparams_/")


def purge_after(logdir, step):
    """Removes every summary with a step greater than `step` from the logdir's event files (-1:
    all of them); returns how many were removed. Other records (each file's header) stay. Only
    the project's own files are rewritten, known by their tags: an event file that holds any
    other tag (another program's run in the same folder) is left as it is."""
    removed = 0
    for path in event_files(logdir):
        kept, dropped, foreign = [], 0, False
        for record in _records(path):
            event = event_pb2.Event.FromString(record)
            if any(not value.tag.startswith(OWN_TAG_PREFIXES) for value in event.summary.value):
                foreign = True
                break
            if event.HasField("summary") and event.step > step:
                dropped += 1
            else:
                kept.append(record)
        if foreign or not dropped:
            continue
        partial = f"{path}.purge-{os.getpid()}"
        with tf.io.TFRecordWriter(partial) as writer:
            for record in kept:
                writer.write(record)
        os.replace(partial, path)
        removed += dropped
    return removed


def read_scalars(logdir, prefix=""):
    """{tag: [(step, value), ...] sorted by step} of the scalar summaries whose tag starts with
    `prefix`. A step logged twice keeps its last value."""
    series = {}
    for path in event_files(logdir):
        for record in _records(path):
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if not value.tag.startswith(prefix):
                    continue
                if value.HasField("tensor"):
                    number = tf.make_ndarray(value.tensor)
                    if number.dtype.kind not in "fiu" or number.size != 1:
                        continue
                    number = float(np.asarray(number).reshape(()))
                elif value.HasField("simple_value"):
                    number = float(value.simple_value)
                else:
                    continue
                series.setdefault(value.tag, {})[event.step] = number
    return {tag: sorted(points.items()) for tag, points in series.items()}
