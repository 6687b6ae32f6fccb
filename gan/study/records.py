"""A study's records: one small file per finished run, committed with the study.

`<output>/records/<run>.json` holds what the report needs of a run: its settings (the flagfile
text) and their digest, the seed, the machine, the status, the final and best metrics, the
evaluation curves, the wall time and steps/s; `<run>.png` beside it holds MOSAIC_SAMPLES samples
of its final generator (its moving average when it keeps one) from the mosaic's fixed noise, as
uint8. A run with a record of its current digest is finished: the runner skips it on any
machine, and `gan.ablate --report_only` rebuilds results.md, results.csv and every plot from the
records alone, with no run directories.
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf

from gan import files, flops, images, latent, rundir
from gan.study import rows
from gan.study.plan import PlannedReference, run_digest
from gan.study.status import REFERENCE_SAMPLES
from gan.study.summary import RECORDS
TRIALS = "tune"  # tuning trials' runs are <root>/tune/<arm>/trial=<n>,seed=<s>
FORMAT = 1
MOSAIC_SAMPLES = 10
# A row's fields kept as they are; the rest of a record is its curves, settings and provenance.
ROW_FIELDS = ("run", "config", "seed", "status", "reason", "steps", "eval_step", "fid_final",
              "fid_best", "wall_seconds", "steps_per_sec", "machine", "threads")


def directory(study, root):
    """Where a study's records live: `<output>/records` when the study file declares its output
    folder, else `<root>/records`."""
    return os.path.join(study.output or root, RECORDS)


def _paths(records_dir, run):
    base = os.path.join(records_dir, run.name)
    return base + ".json", base + ".png"


def make(study, run, row):
    """The record of a finished run, from its row (`rows.run_row`)."""
    record = {"format": FORMAT, "digest": run_digest(run), "choices": dict(run.choices),
              **{name: row.get(name, "") for name in ROW_FIELDS}}
    record["metrics"] = {name: row.get(name, "")
                         for name in rows.other_metrics() + rows.conditional_metrics()
                         if row.get(name, "") != ""}
    keep = {"eval/" + name for name in ("fid", "raw/fid") + rows.other_metrics()
            + rows.conditional_metrics()} | set(study.curves)
    scalars = row.get("scalars", {})
    record["curves"] = {tag: [[int(step), float(value)] for step, value in series
                              if tag.startswith("eval/") or not study.curve_max_step
                              or step <= study.curve_max_step]
                        for tag, series in sorted(scalars.items()) if tag in keep}
    if isinstance(run, PlannedReference):
        record["command"] = run.command
    else:
        record["flags"] = run.config.to_flagfile()
        record["compute"] = compute(run.config, row.get("steps_per_sec", ""))
    return record


def compute(config, steps_per_sec):
    """A run's cost per iteration, in each unit of a study's compute axis: real images D sees,
    FLOPs (gan.flops; None when the networks cannot be counted) and training seconds (from its
    mean steps/s; None when unknown)."""
    try:
        flops_per_step = flops.flops_per_iteration(config)
    except Exception:  # a network the counter does not know how to run: no FLOPs axis for it
        flops_per_step = None
    return {"images_per_step": flops.images_per_iteration(config),
            "flops_per_step": flops_per_step,
            "seconds_per_step": 1.0 / steps_per_sec if steps_per_sec not in ("", 0) else None}


def write(records_dir, run, record, samples=None):
    """Writes a run's record (and its samples, uint8 [N, H, W, C], when given)."""
    json_path, png_path = _paths(records_dir, run)
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    if samples is not None:
        images.write_png(png_path, images.make_grid(samples, 1, len(samples)))
    files.write_atomically(json_path, (json.dumps(record, indent=1, sort_keys=True) + "\n")
                           .encode())


def read(records_dir, run):
    """The run's record when there is one of its current settings (digest); else None. A
    damaged record reads as none: the run is trained again."""
    json_path, _ = _paths(records_dir, run)
    try:
        with open(json_path) as f:
            record = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if (not isinstance(record, dict) or record.get("format") != FORMAT
            or record.get("digest") != run_digest(run) or record.get("run") != run.name):
        return None
    return record


def tuning_cost(records_dir):
    """(trial runs, their wall seconds summed) over the tuning trials' records."""
    count, seconds = 0, 0.0
    for path in glob.glob(os.path.join(records_dir, TRIALS, "*", "*.json")):
        try:
            with open(path) as f:
                wall = json.load(f).get("wall_seconds")
        except (OSError, ValueError, UnicodeDecodeError, AttributeError):
            continue
        if isinstance(wall, (int, float)):
            count, seconds = count + 1, seconds + wall
    return count, seconds


def row(record, run):
    """A run's row of results from its record: the fields of `rows.run_row`."""
    result = {name: record.get(name, "") for name in ROW_FIELDS}
    result.update(dict(run.choices), config=run.config_name, seed=run.seed)
    metrics = record.get("metrics", {}) if isinstance(record.get("metrics"), dict) else {}
    for name in rows.other_metrics() + rows.conditional_metrics():
        result[name] = metrics.get(name, "")
    curves = record.get("curves", {}) if isinstance(record.get("curves"), dict) else {}
    result["scalars"] = {tag: [tuple(point) for point in series]
                         for tag, series in curves.items()}
    result["fid_curve"] = result["scalars"].get("eval/fid", [])
    result["compute"] = record.get("compute") if isinstance(record.get("compute"), dict) else {}
    return result


def samples(records_dir, run):
    """The run's recorded samples, uint8 [N, H, W, C], or None when it has none."""
    _, png_path = _paths(records_dir, run)
    try:
        with open(png_path, "rb") as f:
            grid = tf.io.decode_png(f.read()).numpy()
    except (OSError, tf.errors.OpError):
        return None
    return images.split_grid(grid, 1, MOSAIC_SAMPLES)


def run_samples(run_dir, run):
    """MOSAIC_SAMPLES samples of a finished run, uint8 [N, H, W, C]: a reference's first
    samples, or the final generator's from the mosaic's fixed noise. Raises OSError,
    rundir.RunError or ValueError when they cannot be had."""
    if isinstance(run, PlannedReference):
        samples = np.load(os.path.join(run_dir, REFERENCE_SAMPLES), allow_pickle=False)
        if samples.dtype != np.uint8 or samples.ndim != 3 or len(samples) < MOSAIC_SAMPLES:
            raise ValueError(f"{REFERENCE_SAMPLES} holds {samples.dtype} {samples.shape}, not "
                             f"uint8 [N >= {MOSAIC_SAMPLES}, H, W]")
        return samples[:MOSAIC_SAMPLES, ..., None]
    _, state, _ = rundir.load_run(run_dir)
    generator = state.sampling_generator
    noise = latent.fixed(MOSAIC_SAMPLES, generator.latent_dim, generator.latent_distribution,
                         seed=latent.MOSAIC_SEED)
    labels = (tf.constant(np.arange(MOSAIC_SAMPLES, dtype=np.int32) % generator.num_classes)
              if generator.num_classes else None)
    return images.to_uint8(generator(noise, training=False, labels=labels).numpy())


def capture(study, run, root, records_dir):
    """Writes the record of a run that has finished in its directory (done or diverged);
    returns it, with a line saying what could not be kept ("" when all was)."""
    run_dir = os.path.join(root, run.name)
    result = rows.run_row(study, run, root)
    record = make(study, run, result)
    problem, grid = "", None
    if record["status"] == "done" and not run.name.startswith(TRIALS + "/"):
        try:
            grid = run_samples(run_dir, run)
        except (OSError, rundir.RunError, ValueError) as e:
            problem = (f"{run.name}: its record has no samples for the mosaic: "
                       f"{str(e).splitlines()[0][:160]}")
    write(records_dir, run, record, grid)
    return record, problem
