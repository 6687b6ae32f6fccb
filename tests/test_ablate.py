"""The ablation runner, `python -m gan.ablate`, as a user runs it: a tiny study on real MNIST
(two variants, one diverging, and a reference row), killed mid-study and resumed, reported; its
launchers; its study-file errors; the table's statistics over seeds (in-process, from rows)."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from gan import data, latent, machine, rundir
from gan.study import analysis as analysis_lib
from gan.study import launchers
from gan.study import plan as plan_lib
from gan.study import sections
from gan.study import records as records_lib
from gan.study import report as report_lib
from gan.study import rows as rows_lib
from gan.study import runner as runner_lib
from gan.study import status as status_lib
from gan.study import summary as summary_lib
from gan.study import tuning as tuning_lib
from helpers import (REPO, assert_clean_failure, read_png, run_module, summary_records,
                     user_environment)

TINY_STUDY = """
description = "A tiny study: Adam against an SGD discriminator that diverges at once."
base = "{base}"
seeds = [0]

[settings]
g_hidden = [32, 64]
d_hidden = [64, 32]
batch_size = 16
num_steps = 40
eval_every = 20
eval_num_samples = 200
log_every = 10
sample_every = 20
checkpoint_every = 10
steps_per_loop = 5
jit_compile = "false"

[report]
curves = ["train/g_grad_norm"]

[axes.d]
adam = {{ d_learning_rate = 2e-4 }}
diverging_sgd = {{ d_optimizer = "sgd", d_learning_rate = 1e12 }}

# An outside "implementation" that hands over real test images as its samples.
[references.real_test]
command = '''{{python}} -c "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])" {real} {{samples}}'''
"""
RUN_NAMES = ["d=adam,seed=0", "d=diverging_sgd,seed=0", "reference=real_test,seed=0"]
TRAININGS = [name for name in RUN_NAMES if name.startswith("d=")]
RESUMED = "d=adam,seed=0"


def write_study(folder, text=TINY_STUDY, name="tiny.toml"):
    real = os.path.join(folder, "real_test.npy")
    if not os.path.exists(real):
        test = data.load("mnist", "test").images[:200, ..., 0]
        np.save(real, np.rint((test + 1) * 127.5).astype(np.uint8))
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text.format(base=os.path.join(REPO, "experiments", "mnist_mlp.flags"),
                            real=real))
    return path


def start_runner(study, root):
    env = user_environment()
    # One at a time, so that nothing has finished when the first training is killed; the rerun
    # trains the rest at the default, several at a time.
    return subprocess.Popen([sys.executable, "-m", "gan.ablate", f"--study={study}",
                             f"--root={root}", "--parallel=1"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study, its runner SIGKILLed while the first training trains, then rerun to the
    end. Returns (study path, root, the rerun's output)."""
    folder = str(tmp_path_factory.mktemp("study"))
    path, root = write_study(folder), os.path.join(folder, "root")
    runner = start_runner(path, root)
    first = os.path.join(root, RESUMED)
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(first, "checkpoints", "ckpt-10.index")):
        assert runner.poll() is None and time.time() < deadline, runner.communicate()[0]
        time.sleep(0.2)
    runner.kill()
    killed_output = runner.communicate()[0]
    # The orphaned training got SIGTERM from the kernel: it checkpoints, stops, frees its lock.
    deadline = time.time() + 60
    while rundir.LogdirLock(first).is_held():
        assert time.time() < deadline, "the killed runner's training kept running"
        time.sleep(0.2)
    assert "[1/3]" not in killed_output
    rerun = run_module("gan.ablate", f"--study={path}", f"--root={root}")
    return path, root, rerun.stdout


def read_csv(root):
    with open(os.path.join(root, "results.csv")) as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def test_a_killed_study_resumes_where_it_stopped(study):
    _, root, output = study
    with open(os.path.join(root, RESUMED, status_lib.TRAIN_LOG)) as f:
        log = f.read()
    assert log.count("=== ") == 2 and "Resumed from" in log  # resumed, not restarted
    assert "Done at step 40" in log
    # TensorBoard sees each step of the resumed run once.
    records = summary_records(os.path.join(root, RESUMED))
    assert len(records) == len(set(records))
    rows = read_csv(root)
    assert [rows[name]["status"] for name in RUN_NAMES] == ["done", "diverged", "done"]
    assert "[3/3]" in output
    # The default trains the three runs left side by side, one per core.
    cores = runner_lib.usable_cores()
    at_once = min(cores, 3)
    assert f"{at_once} at a time with {cores // at_once} TensorFlow thread" in output
    assert {rows[name]["threads"] for name in RUN_NAMES} == {str(cores // at_once)}
    # Each record names the machine it trained on.
    assert {rows[name]["machine"] for name in RUN_NAMES} == {machine.describe()}


GIB = 2 ** 30


def test_the_default_is_one_run_per_core_unless_fewer_runs_or_memory():
    assert runner_lib.auto_parallel(10, cores=2, memory=24 * GIB) == 2
    assert runner_lib.auto_parallel(10, cores=8, memory=None) == 8
    assert runner_lib.auto_parallel(3, cores=8, memory=24 * GIB) == 3
    assert runner_lib.auto_parallel(10, cores=8, memory=5 * GIB) == 2  # 2 GiB a run
    assert runner_lib.auto_parallel(0, cores=8, memory=GIB) == 1


def test_the_runner_plans_for_the_runs_it_has_left(tmp_path, monkeypatch):
    path = write_study(str(tmp_path))
    runs = [run for run in plan_lib.plan(plan_lib.load_study(path))
            if run.name in TRAININGS]
    monkeypatch.setattr(runner_lib, "usable_cores", lambda: 4)
    monkeypatch.setattr(runner_lib, "available_memory", lambda: 64 * GIB)
    root = tmp_path / "root"
    runner = runner_lib.Runner(str(root), echo=lambda line: None)
    assert (runner.parallel, runner.threads) == (1, 4)  # a tuning's trials, one at a time
    runner.plan(runs)
    assert (runner.parallel, runner.threads) == (2, 2)
    finished = runs[0]
    (root / finished.name).mkdir(parents=True)
    status_lib.write_status(str(root / finished.name),
                            {"status": "done", "flags_digest": plan_lib.run_digest(finished)})
    runner.plan(runs)
    assert (runner.parallel, runner.threads) == (1, 4)
    pinned = runner_lib.Runner(str(root), parallel=2, threads=1, echo=lambda line: None)
    pinned.plan(runs)
    assert (pinned.parallel, pinned.threads) == (2, 1)


def test_a_diverging_run_is_reported_not_fatal(study):
    _, root, output = study
    rows = read_csv(root)
    name = "d=diverging_sgd,seed=0"
    assert rows[name]["status"] == "diverged"
    assert "non-finite" in rows[name]["reason"] and rows[name]["fid_final"] == ""
    with open(os.path.join(root, "results.md")) as f:
        markdown = f.read()
    assert "1 diverged" in markdown and f"`{name}`: diverged at step 0: non-finite" in markdown


def test_results_table_csv_mosaic_plot_and_hparams(study):
    path, root, _ = study
    rows = read_csv(root)
    assert list(rows) == RUN_NAMES
    row, run_dir = rows["d=adam,seed=0"], os.path.join(root, "d=adam,seed=0")
    assert row["d"] == "adam" and row["steps"] == "40" and row["eval_step"] == "40"
    fids = [v for _, v in ablate_scalars(run_dir)["eval/fid"]]
    assert float(row["fid_final"]) == pytest.approx(fids[-1])
    assert float(row["fid_best"]) == pytest.approx(min(fids))
    assert float(row["wall_seconds"]) > 0 and float(row["steps_per_sec"]) > 0
    with open(os.path.join(root, "results.md")) as f:
        markdown = f.read()
    assert f"| `d=adam` | 1 | {fids[-1]:.1f} | – |" in markdown
    # The reference's row: gan.evaluate --samples' numbers for real images, far better.
    reference = rows["reference=real_test,seed=0"]
    with open(os.path.join(root, reference["run"], status_lib.REFERENCE_EVAL)) as f:
        assert float(reference["fid_final"]) == pytest.approx(json.load(f)["fid"])
    assert float(reference["fid_final"]) * 10 < fids[-1]
    assert "No comparison yet: each side needs at least 2 finished runs." in markdown

    # The mosaic's one row (the diverged configuration has none) is the first seed's final
    # generator on the documented noise.
    mosaic = read_png(os.path.join(root, "mosaic.png"))
    assert mosaic.shape == (59, 1 + 29 * records_lib.MOSAIC_SAMPLES, 1)
    mosaic = mosaic[29:]  # row 0 is the reference (the best FID), row 1 d=adam
    _, state, _ = rundir.load_run(os.path.join(root, RUN_NAMES[0]))
    noise = latent.fixed(records_lib.MOSAIC_SAMPLES, 100, "normal", seed=latent.MOSAIC_SEED)
    from gan import images
    samples = state.sampling_generator(noise, training=False).numpy()
    expected = images.make_grid(images.to_uint8(samples), 1, records_lib.MOSAIC_SAMPLES)
    np.testing.assert_array_equal(mosaic, expected)

    pytest.importorskip("matplotlib")
    for name in ("fid.png", "g_grad_norm.png", "seeds.png"):
        plot = read_png(os.path.join(root, name))
        assert plot.shape[0] > 200 and plot.shape[1] > 300 and plot.std() > 0

    root_tags = {tag for tag, _ in summary_records(root)}
    assert "_hparams_/experiment" in root_tags
    for name in TRAININGS:
        assert ("_hparams_/session_start_info", 0) in summary_records(os.path.join(root, name))


def ablate_scalars(run_dir):
    from gan import events
    return events.read_scalars(run_dir, "eval/")


def test_run_commands_and_a_slurm_array_that_runs(study, tmp_path):
    path, root, _ = study
    commands = launchers.run_commands(path, root, plan_lib.plan(plan_lib.load_study(path)))
    assert [c.split("--only=")[1].strip("'") for c in commands] == RUN_NAMES

    # Where the runs train is not part of what they are: under a tf.distribute strategy, the
    # same runs, and the finished ones stay finished.
    placed = launchers.with_placement(plan_lib.plan(plan_lib.load_study(path)), strategy="mirrored",
                                   cpu_replicas=2)
    assert [run.config.runtime.strategy for run in placed if hasattr(run, "config")] == [
        "mirrored", "mirrored"]
    assert [plan_lib.run_digest(run) for run in placed] == [
        plan_lib.run_digest(run) for run in plan_lib.plan(plan_lib.load_study(path))]

    written = run_module("gan.ablate", f"--study={path}", f"--root={root}", "--launcher=slurm",
                         "--strategy=mirrored", "--cpu_replicas=2")
    script = os.path.join(root, "slurm_array.sh")
    assert "sbatch" in written.stdout
    with open(script) as f:
        text = f.read()
    assert "#SBATCH --array=0-2" in text
    assert text.count("--strategy=mirrored --cpu_replicas=2") == 3
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    # Task 0 as Slurm would run it: the finished run is recognised and skipped, nothing trains.
    log = os.path.join(root, RUN_NAMES[0], status_lib.TRAIN_LOG)
    before = open(log).read()
    env = user_environment(SLURM_ARRAY_TASK_ID="0")
    task = subprocess.run(["bash", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert task.returncode == 0, task.stderr[-2000:]
    assert f"{RUN_NAMES[0]}: done already (its record), skipped" in task.stdout
    assert open(log).read() == before


def test_study_file_mistakes_are_named(tmp_path):
    folder = str(tmp_path)
    cases = {
        "unknown flag": (TINY_STUDY.replace("batch_size = 16", "batchsize = 16"),
                         "[settings]: unknown flag 'batchsize'"),
        "bad value": (TINY_STUDY.replace("d_learning_rate = 2e-4", "d_learning_rate = -1"),
                      "d=adam: --d_learning_rate=-1: expected a value > 0"),
        "bad toml": (TINY_STUDY + "\n[axes\n", "not valid TOML"),
        "axis of a scalar": (TINY_STUDY + "\n[axes.more]\nx = 1\n", "axis 'more' must be"),
        "findings not text": (TINY_STUDY.replace("[report]\n", "[report]\nfindings = 3\n"),
                              "findings = "),
        "missing base": (TINY_STUDY.replace('base = "{base}"', 'base = "nope.flags"'),
                         "base flagfile"),
    }
    for label, (text, expected) in cases.items():
        path = write_study(folder, text, f"{label.replace(' ', '_')}.toml")
        with pytest.raises(plan_lib.StudyError) as raised:
            plan_lib.plan(plan_lib.load_study(path))
        assert path in str(raised.value) and expected in str(raised.value), (label, raised.value)
    # On the command line: one line, exit code 2.
    result = run_module("gan.ablate", f"--study={path}", f"--root={tmp_path}/r", check=False)
    assert_clean_failure(result, "gan.ablate: error:", "base flagfile")


def test_the_plan_is_the_product_of_the_axes_times_the_seeds(tmp_path):
    text = TINY_STUDY.replace("seeds = [0]", "seeds = [3, 4, 5]") + (
        '\n[axes]\nd_update = ["split", "joint"]\n')
    # Axis order follows the file: d (a table defined first), then d_update.
    planned = plan_lib.plan(plan_lib.load_study(write_study(str(tmp_path), text)))
    runs = [r for r in planned if isinstance(r, plan_lib.PlannedRun)]
    assert len(runs) == 2 * 2 * 3
    assert [r.name for r in planned if r not in runs] == [
        f"reference=real_test,seed={seed}" for seed in (3, 4, 5)]
    assert runs[0].name == "d=adam,d_update=split,seed=3"
    assert {r.config.game.d_update for r in runs} == {"split", "joint"}
    sgd = [r for r in runs if dict(r.choices)["d"] == "diverging_sgd"]
    assert all(r.config.d_opt.optimizer == "sgd" and r.config.d_opt.learning_rate == 1e12
               for r in sgd)
    assert all(r.config.schedule.num_steps == 40 for r in runs)
    assert sorted({r.seed for r in runs}) == [3, 4, 5]


# --- statistics ------------------------------------------------------------------------------------

def synthetic_row(config, seed, fid, status="done"):
    row = {"run": f"{config},seed={seed}", "config": config, "seed": seed, "status": status,
           "reason": "" if status == "done" else "non-finite loss", "steps": 100,
           "wall_seconds": 10.0, "fid_curve": [], "eval_step": 100, "steps_per_sec": 50.0,
           "fid_final": fid if status == "done" else "", "fid_best": fid if status == "done"
           else ""}
    row.update({name: (1.0 if status == "done" else "")
                for name in rows_lib.other_metrics() + rows_lib.conditional_metrics()})
    return row


def test_results_table_over_seeds_from_rows(tmp_path):
    """results.md from rows of 3 seeds: mean ± sd and the t interval from their formulas,
    sorted by FID, failures counted and listed, and the noise verdicts."""
    findings = "Configuration *c* and *a* are one; b is the SGD of the tutorial."
    text = TINY_STUDY.replace("[report]\n", f'[report]\nfindings = """\n{findings}\n"""\n')
    study = plan_lib.load_study(write_study(str(tmp_path), text))
    fids = {"a": [50.0, 58.0, 45.0], "b": [178.0, 170.0, 185.0], "c": [48.0, 56.0, 46.0]}
    rows = [synthetic_row(config, seed, fid) for config, values in fids.items()
            for seed, fid in enumerate(values)]
    rows.append(synthetic_row("b", 3, None, status="diverged"))
    summaries = report_lib.config_summaries(rows)
    assert [s["config"] for s in summaries] == ["c", "a", "b"]
    markdown = report_lib.results_markdown(study, rows, summaries, "python -m gan.ablate")
    for config, values in fids.items():
        mean, sd = np.mean(values), np.std(values, ddof=1)
        half = 4.303 * sd / math.sqrt(3)  # t(0.975, 2)
        assert (f"| `{config}` | 3 | {mean:.1f} ± {sd:.1f} | [{mean - half:.1f}, "
                f"{mean + half:.1f}] |") in markdown, config
    assert "3 done, 1 diverged" in markdown and "`b,seed=3`: diverged" in markdown
    # The declared analysis: against the study's first configuration (a), not the best row.
    assert "final FID of each configuration against the baseline **a**" in markdown
    table = {line.split(" | ")[0]: line for line in markdown.splitlines()
             if line.startswith("| `") and " | `a` | " in line}
    assert table["| `b`"].endswith("| worse |")
    assert "| undecided — this n detects about " in table["| `c`"]
    # Every comparison shows the difference it detects with 80% power, from the pooled sd.
    from statsmodels.stats.power import TTestIndPower
    pooled = math.sqrt(sum(np.var(v, ddof=1) for v in fids.values()) / 3)
    mde = TTestIndPower().solve_power(nobs1=3, alpha=0.05, power=0.8, ratio=1.0) * pooled
    assert table["| `b`"].split(" | ")[-2] == table["| `c`"].split(" | ")[-2] == f"{mde:.1f}"
    # The researcher's reading comes last, under its own heading, as written.
    assert markdown.split("## Findings")[1].rstrip().endswith(findings)


@pytest.mark.parametrize("study_file", sorted(
    name for name in os.listdir(os.path.join(REPO, "experiments", "ablations"))
    if name.endswith(".toml")))
def test_every_shipped_study_plans_valid_runs(study_file):
    study = plan_lib.load_study(os.path.join(REPO, "experiments", "ablations", study_file))
    runs = plan_lib.plan(study)
    configurations = math.prod(len(axis.choices) for axis in study.axes)
    assert len(runs) == configurations * len(study.seeds) + len(study.references) * len(study.seeds)
    assert len({run.name for run in runs}) == len(runs)
    for run in runs:
        if isinstance(run, plan_lib.PlannedRun):
            assert run.config.schedule.num_steps > 0 and run.config.schedule.seed == run.seed


ABLATIONS = os.path.join(REPO, "experiments", "ablations")


@pytest.mark.parametrize("folder", sorted(
    name for name in os.listdir(ABLATIONS)
    if os.path.isfile(os.path.join(ABLATIONS, name, "results.md"))))
def test_every_shipped_report_is_what_its_committed_records_give(folder, tmp_path, monkeypatch):
    # A verdict in a committed results.md must follow from the committed records by the study
    # file's declared analysis, as the code stands: rebuild the report from the records alone
    # and compare the text.
    monkeypatch.chdir(REPO)  # the report names files relative to where it runs
    with open(os.path.join(ABLATIONS, folder, "results.md"), encoding="utf-8") as f:
        committed = f.read()
    command = next(line for line in committed.splitlines()
                   if line.startswith("- Command: `"))[len("- Command: `"):-1]
    study_path = next(a for a in command.split() if a.startswith("--study="))[len("--study="):]
    study = plan_lib.load_study(study_path)
    assert os.path.realpath(study.output) == os.path.join(os.path.realpath(ABLATIONS), folder)
    runs = plan_lib.plan(study)
    root = str(tmp_path / "no runs here")  # the records alone
    summary = None
    if study.tune:
        summary = summary_lib.read_summary(study, records_lib.directory(study, root), runs)
        assert summary is not None, f"{folder}: its records hold no tuning of these settings"
        runs = tuning_lib.apply(runs, summary_lib.winners(summary))
    markdown = report_lib.build_report(study, root, runs, command, summary)[0]
    assert markdown == committed, (f"{folder}/results.md is not what its records give; "
                                   f"regenerate it: {command}")


def test_an_interrupted_run_is_reported_at_its_last_checkpoint(tmp_path):
    study = plan_lib.load_study(write_study(str(tmp_path)))
    run = plan_lib.plan(study)[0]
    run_dir = tmp_path / "root" / run.name
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)),
                                         rundir.checkpoint_dir(str(run_dir)), max_to_keep=2)
    manager.save(checkpoint_number=30)
    status_lib.write_status(str(run_dir), {"status": "running", "flags_digest": plan_lib.run_digest(run)})
    row = rows_lib.run_row(study, run, str(tmp_path / "root"))
    # Nobody holds the run's lock: its runner was killed.
    assert row["status"] == "interrupted" and row["steps"] == 30


@pytest.mark.parametrize("analysis,message", [
    ('baseline = "d=nope"', "[analysis] baseline 'd=nope' is not a configuration of the study; "
                            "expected one of d=adam, d=diverging_sgd, reference=real_test, "
                            "'all_pairs' or 'raw_generator'"),
    ("alpha = 0.9", "[analysis] takes baseline"),
    ('metric = "kid"', "[analysis] takes baseline"),
    ("margin = -1", "[analysis] takes baseline"),
    ("baselin = 3", "[analysis] takes baseline"),
    ('block_machines = "yes"', "[analysis] takes baseline"),
    ('baseline = "all_pairs"\nblock_machines = true', "[analysis] block_machines compares each "
     "configuration with a baseline configuration within machines"),
    ('block_machines = true\nvariance = "separate"', "[analysis] takes baseline"),
    ('variance = "per_comparison"', "[analysis] variance is the residual variance of the "
     "within-machines model; expected block_machines = true beside it"),
])
def test_a_bad_analysis_declaration_is_one_line(tmp_path, analysis, message):
    path = write_study(str(tmp_path), TINY_STUDY + f"\n[analysis]\n{analysis}\n")
    with pytest.raises(plan_lib.StudyError) as refused:
        plan_lib.plan(plan_lib.load_study(path))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_declared_analysis_is_read_from_the_study_file(tmp_path):
    path = write_study(str(tmp_path), TINY_STUDY + '\n[analysis]\nbaseline = "all_pairs"\n'
                       'metric = "fid_best"\nalpha = 0.01\nmargin = 2\n')
    study = plan_lib.load_study(path)
    assert study.analysis == sections.Analysis("all_pairs", "fid_best", 0.01, 2.0)
    plan_lib.plan(study)


def test_runs_of_two_machines_are_not_compared_unless_the_study_says_so(tmp_path):
    import tensorflow as tf
    from gan.study import analysis
    here = machine.describe()
    assert f"TensorFlow {tf.__version__}" in here and "[" in here
    rows = [dict(synthetic_row(config, seed, fid), machine=where)
            for config, where in (("a", "Xeon [avx2 avx512f]"), ("b", "EPYC [avx2]"))
            for seed, fid in enumerate([50.0, 52.0, 51.0])]
    study = plan_lib.load_study(write_study(str(tmp_path)))
    refused = analysis.lines(study, rows)
    assert len(refused) == 1 and refused[0].startswith("Not analysed: the finished runs trained "
                                                       "on 2 machines (EPYC [avx2]; Xeon")
    mixed = plan_lib.load_study(write_study(str(tmp_path), TINY_STUDY
                                            + "\n[analysis]\nmix_machines = true\n"))
    assert any(line.startswith("| `b` | `a` |") for line in analysis.lines(mixed, rows))
    # Blocked on machine, a study can span machines when each holds runs of several arms.
    rows += [dict(synthetic_row(config, seed, fid), machine=where)
             for config, where in (("a", "EPYC [avx2]"), ("b", "Xeon [avx2 avx512f]"))
             for seed, fid in enumerate([60.0, 61.0, 59.0], start=3)]
    blocked = plan_lib.load_study(write_study(str(tmp_path), TINY_STUDY.replace(
        "[report]", '[analysis]\nbaseline = "a"\nblock_machines = true\n\n[report]')))
    lines = analysis.lines(blocked, rows)
    assert "within machines (2 here: EPYC [avx2]; Xeon [avx2 avx512f])" in lines[0]
    assert any(line.startswith("| `b` | `a` | 6 vs 6 |") for line in lines), lines
    assert "runs alone" not in lines[0]
    # A third, erratic configuration: pooled, it widens b's interval; per comparison, it does not.
    rows += [dict(synthetic_row("c", seed, fid), machine=where) for seed, (fid, where) in
             enumerate([(20.0, "EPYC [avx2]"), (140.0, "EPYC [avx2]"), (30.0, "Xeon [avx2 avx512f]"),
                        (160.0, "Xeon [avx2 avx512f]")])]
    widths = {}
    for variance in ("pooled", "per_comparison"):
        declared = plan_lib.load_study(write_study(str(tmp_path), TINY_STUDY.replace(
            "[report]", '[analysis]\nbaseline = "a"\nblock_machines = true\n'
                        f'variance = "{variance}"\n\n[report]')))
        assert declared.analysis.variance == variance
        lines = analysis.lines(declared, rows)
        assert ("fitted for each comparison to the baseline's and that configuration's runs "
                "alone" in lines[0]) == (variance == "per_comparison")
        (row,) = [line for line in lines if line.startswith("| `b` | `a` | 6 vs 6 |")]
        low, high = (float(x) for x in row.split("|")[5].strip(" []").split(","))
        widths[variance] = high - low
    assert widths["per_comparison"] < widths["pooled"] / 3, widths


def test_the_records_alone_rebuild_every_row_diverged_and_reference_too(study, tmp_path):
    path, root, _ = study
    records = os.path.join(root, "records")
    assert sorted(os.listdir(records)) == sorted(
        [f"{name}.json" for name in RUN_NAMES] + [f"{name}.png" for name in RUN_NAMES
                                                  if name != "d=diverging_sgd,seed=0"])
    moved = str(tmp_path / "root")
    shutil.copytree(records, os.path.join(moved, "records"))
    study = plan_lib.load_study(path)
    report_lib.write_report(study, moved, plan_lib.plan(study), "python -m gan.ablate ...")
    for name in ("results.csv", "mosaic.png"):
        with open(os.path.join(root, name), "rb") as f, open(os.path.join(moved, name), "rb") as g:
            assert f.read() == g.read(), name


def test_fid_at_a_budget_in_steps_images_seconds_or_flops(tmp_path):
    """A run's FID at a budget is its last evaluation within it, the budget counted in the
    declared unit from the record's cost per step; a compute-matched budget ranks a cheap
    configuration by more of its curve than an expensive one."""
    text = TINY_STUDY.replace("[report]\n", '[analysis]\nbudgets = [2000, 4000]\nunit = "flops"\n'
                              'metric = "fid_budget"\n\n[report]\n')
    study = plan_lib.load_study(write_study(str(tmp_path), text))
    cheap, costly = synthetic_row("cheap", 0, 30.0), synthetic_row("costly", 0, 20.0)
    cheap.update(fid_curve=[(10, 90.0), (20, 60.0), (30, 40.0), (40, 30.0)],
                 compute={"flops_per_step": 100.0, "images_per_step": 16,
                          "seconds_per_step": 0.02})
    costly.update(fid_curve=[(10, 80.0), (20, 50.0), (30, 30.0), (40, 20.0)],
                  compute={"flops_per_step": 200.0, "images_per_step": 80})
    rows = [cheap, costly]
    analysis_lib.add_budgets(study, rows)
    # 2000 FLOPs: cheap's step 20, costly's step 10; 4000: steps 40 and 20.
    assert cheap["fid_at"] == {2000: 60.0, 4000: 30.0}
    assert costly["fid_at"] == {2000: 80.0, 4000: 50.0}
    assert cheap["fid_budget"] == 30.0 and costly["fid_budget"] == 50.0
    assert analysis_lib.fid_at(costly, 1000, "images") == 80.0  # 80 images a step: step 12.5
    assert analysis_lib.fid_at(cheap, 25, "steps") == 60.0
    assert analysis_lib.fid_at(cheap, 0.5, "seconds") == 60.0  # 0.02 s a step: up to step 25
    assert analysis_lib.fid_at(cheap, 5, "flops") is None  # no evaluation that early
    assert analysis_lib.fid_at(dict(cheap, compute={}), 4000, "flops") is None
    markdown = report_lib.results_markdown(study, rows, report_lib.config_summaries(rows), "x")
    assert "| `cheap` | 60.0 (1) | 30.0 (1) |" in markdown
    assert "FID at the last budget of each configuration" in markdown


def test_a_budget_in_steps_must_be_an_evaluation_of_every_run(tmp_path):
    text = TINY_STUDY.replace("[report]\n", "[analysis]\nbudgets = [30]\n\n[report]\n")
    study = plan_lib.load_study(write_study(str(tmp_path), text))
    with pytest.raises(plan_lib.StudyError,
                       match=r"budget 30 steps: run d=adam,seed=0 evaluates every 20 steps up "
                             r"to 40; expected budgets that are multiples of eval_every within "
                             r"num_steps"):
        plan_lib.plan(study)


EMA_STUDY = TINY_STUDY.split("[report]")[0].replace("seeds = [0]", "seeds = [0, 1]") + """
[analysis]
baseline = "raw_generator"
margin = 50.0

[axes]
g_ema_decay = [0.9]
"""


def test_a_moving_average_is_compared_with_its_own_g_run_by_run(tmp_path):
    """baseline = "raw_generator": each run scores its averaged G (eval/fid, BatchNorm statistics
    recomputed) and G itself (eval/raw/fid) on the same noise; the records keep both curves and
    the verdict pairs them by run."""
    study_path = write_study(str(tmp_path), EMA_STUDY)
    root = str(tmp_path / "root")
    run_module("gan.ablate", f"--study={study_path}", f"--root={root}")
    with open(os.path.join(root, "g_ema_decay=0.9,seed=0", "train.log")) as f:
        log = f.read()
    assert "eval at step 40 (ema generator)" in log and "eval at step 40 (raw generator)" in log
    pairs = []
    for seed in (0, 1):
        with open(os.path.join(root, "records", f"g_ema_decay=0.9,seed={seed}.json")) as f:
            record = json.load(f)
        averaged, raw = record["curves"]["eval/fid"], record["curves"]["eval/raw/fid"]
        assert [step for step, _ in averaged] == [step for step, _ in raw] == [20, 40]
        assert record["fid_final"] == averaged[-1][1] != raw[-1][1]
        pairs.append(averaged[-1][1] - raw[-1][1])
    with open(os.path.join(root, "results.md")) as f:
        markdown = f.read()
    line = next(line for line in markdown.splitlines()
                if line.startswith("| `g_ema_decay=0.9` (averaged G) | raw G | 2 pairs |"))
    assert f"| {np.mean(pairs):+.1f} |" in line, line
    assert "paired by run" in markdown
    assert f"- Machines: {machine.describe()}\n" in markdown
    # Without a moving average in some configuration, that baseline is one line.
    text = EMA_STUDY.replace("g_ema_decay = [0.9]", "g_ema_decay = [0.0, 0.9]")
    study = plan_lib.load_study(write_study(str(tmp_path), text, name="no_ema.toml"))
    with pytest.raises(plan_lib.StudyError, match=r"g_ema_decay=0.0 keeps none \(expected "
                                                  r"g_ema_decay > 0 in every configuration\)"):
        plan_lib.plan(study)
