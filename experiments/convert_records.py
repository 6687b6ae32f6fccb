r"""Converts a study that was reported before records existed into records, without training:

    python experiments/convert_records.py experiments/ablations/losses.toml

From the study's folder (its `output`): each finished row of results.csv becomes
records/<run>.json, its settings and digest those the study file plans today (the shipped
studies' digests are guarded by tests/test_digests.py, so they are the settings the rows trained
with); each row of mosaic.png becomes the samples of its configuration's first finished seed.
The table held no curves and no machine: the records leave them empty, and say where they came
from. Then `gan.ablate --report_only` reports the study from its records.
"""

import argparse
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan import images  # noqa: E402
from gan.study import plan as plan_lib  # noqa: E402
from gan.study import records, report, rows  # noqa: E402
from gan.study.status import FINAL_STATES  # noqa: E402

NUMBERS = ("steps", "eval_step", "fid_final", "fid_best", "wall_seconds", "steps_per_sec")


def table_rows(path, runs):
    """results.csv's rows as report rows ({run name: row}), numbers as numbers."""
    with open(path) as f:
        table = {row["run"]: row for row in csv.DictReader(f)}
    converted = {}
    for run in runs:
        row = table.get(run.name)
        if row is None:
            continue
        for name in NUMBERS + rows.other_metrics() + rows.conditional_metrics():
            value = row.get(name, "")
            row[name] = "" if value == "" else (int(float(value)) if name in ("steps", "eval_step")
                                                else float(value))
        row.update(config=run.config_name, seed=run.seed, machine=row.get("machine", ""),
                   scalars={})
        converted[run.name] = row
    return converted


def mosaic_samples(path, table, runs):
    """{config: its mosaic row's samples}, the rows in the order the old report drew them (the
    configurations with a finished run, by mean final FID); {} when the picture does not fit."""
    summaries = report.config_summaries([table[run.name] for run in runs if run.name in table])
    order = [s["config"] for s in summaries if s["fids"]]
    with open(path, "rb") as f:
        import tensorflow as tf
        grid = tf.io.decode_png(f.read()).numpy()
    if grid.shape[0] != 1 + 29 * len(order):
        print(f"{path}: {grid.shape[0]} pixels high, not {1 + 29 * len(order)} for "
              f"{len(order)} rows; no samples converted")
        return {}
    samples = images.split_grid(grid, len(order), records.MOSAIC_SAMPLES)
    return {config: samples[i * records.MOSAIC_SAMPLES:(i + 1) * records.MOSAIC_SAMPLES]
            for i, config in enumerate(order)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="The study file (its output folder holds results.csv).")
    args = parser.parse_args()
    study = plan_lib.load_study(args.study)
    if not study.output:
        sys.exit(f"{args.study}: declares no output folder (output = \"...\")")
    runs = plan_lib.plan(study)
    table = table_rows(os.path.join(study.output, "results.csv"), runs)
    samples = mosaic_samples(os.path.join(study.output, "mosaic.png"), table, runs)
    records_dir = records.directory(study, study.output)
    written, drawn = 0, set()
    for run in runs:
        row = table.get(run.name)
        if row is None or row["status"] not in FINAL_STATES:
            continue
        record = records.make(study, run, row)
        record["source"] = ("converted from results.csv and mosaic.png, reported before records "
                            "existed: no curves, no machine")
        grid = None
        if row["status"] == "done" and run.config_name not in drawn:
            grid = samples.get(run.config_name)
            drawn.add(run.config_name)
        records.write(records_dir, run, record, None if grid is None else np.asarray(grid))
        written += 1
    print(f"wrote {written} records to {records_dir} ({len(drawn & set(samples))} with samples)")


if __name__ == "__main__":
    main()
