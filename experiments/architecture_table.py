"""The table of the architecture flagfiles in docs/results.md, from the runs that
experiments/architecture_runs.sh trained:

    python experiments/architecture_table.py RUNS_DIR [--grids=docs/architectures]

One row per run (RUNS_DIR/<flagfile name>_s<seed>): steps, wall time, median training steps/s,
and gan.evaluate's numbers on the final checkpoint (final_eval.json, 10,000 samples). Each run's
final sample grid is copied to --grids as <name>_s<seed>.png for docs/results.md.
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def median_steps_per_sec(logdir):
    from tests.helpers import scalar_events
    rates = scalar_events(logdir).get("perf/steps_per_sec", {})
    return statistics.median(rates.values()) if rates else float("nan")


def rows(runs_dir, grids):
    for logdir in sorted(glob.glob(os.path.join(runs_dir, "*_s[0-9]*"))):
        final = os.path.join(logdir, "final_eval.json")
        if not os.path.isfile(final):
            continue
        with open(final) as f:
            result = json.load(f)
        with open(os.path.join(logdir, "config.json")) as f:
            config = json.load(f)
        with open(os.path.join(logdir, "wall_seconds")) as f:
            wall = int(f.read())
        name = os.path.basename(logdir)
        step = result["step"]
        grid = os.path.join(logdir, "samples", f"step_{step:06d}.png")
        if grids and os.path.isfile(grid):
            os.makedirs(grids, exist_ok=True)
            shutil.copyfile(grid, os.path.join(grids, f"{name}.png"))
        yield name, config, step, wall, median_steps_per_sec(logdir), result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir")
    parser.add_argument("--grids", default=os.path.join(REPO, "docs", "architectures"))
    args = parser.parse_args()
    print("| run | dataset | steps | wall time | steps/s | FID | KID | score | precision "
          "| recall | cond. accuracy | intra-FID | generator |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, config, step, wall, rate, r in rows(args.runs_dir, args.grids):
        conditional = "conditional_accuracy" in r
        print(f"| `{name}` | {config['dataset']} | {step} | {wall // 60} min {wall % 60:02d} s | "
              f"{rate:.1f} | {r['fid']:.2f} | {r['kid']:.2f} | {r['classifier_score']:.2f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['conditional_accuracy'] if conditional else '-'} | "
              f"{round(r['intra_fid'], 2) if conditional else '-'} | {r['generator']} |")


if __name__ == "__main__":
    main()
