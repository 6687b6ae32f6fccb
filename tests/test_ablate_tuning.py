"""A tuned study end to end, as a user runs it: two `gan.ablate --worker` processes share its
Optuna storage, one is SIGKILLed mid-trial, the other retries that trial from its checkpoints;
then `gan.ablate` trains each arm's winner on 3 fresh seeds and reports. Its records alone then
rebuild the report, and continue the study, with every run directory deleted."""

import csv
import filecmp
import glob
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

from gan.study import summary as summary_lib
from helpers import REPO, run_module, user_environment

optuna = pytest.importorskip("optuna",
                             reason="the tuning tests need Optuna (pip install -e .[study])")

TUNED_STUDY = """
description = "A tiny tuned study: two D losses, each tuned on its own budget (and space)."
base = "{base}"
seeds = [0, 1, 2]

[settings]
g_hidden = [32, 64]
d_hidden = [64, 32]
batch_size = 16
num_steps = 40
eval_every = 40
eval_num_samples = 200
log_every = 10
sample_every = 40
checkpoint_every = 10
steps_per_loop = 10
jit_compile = "false"

[axes.d_loss.minimax]
d_loss = "minimax"

# The hinge arm also tunes a weight of its own, beside the shared space.
[axes.d_loss.hinge]
d_loss = "hinge"
r1_weight = {{ uniform = [0.0, 1.0] }}

[tune]
trials = 4
seeds = [100]
min_steps = 20
reduction_factor = 2
sampler = "random"
sampler_seed = 0
eval_num_samples = 200

[tune.space]
g_learning_rate = {{ log_uniform = [1e-4, 1e-3] }}
d_learning_rate = {{ log_uniform = [1e-4, 1e-3] }}

[analysis]
baseline = "d_loss=minimax"
margin = 20.0
"""
ARMS = ("d_loss=minimax", "d_loss=hinge")
FINAL_RUNS = [f"{arm},seed={seed}" for seed in (0, 1, 2) for arm in ARMS]


def postgres_url():
    """A reachable PostgreSQL server's URL ($GAN_TEST_POSTGRES_URL), or None."""
    url = os.environ.get("GAN_TEST_POSTGRES_URL", "postgresql://postgres@localhost/postgres")
    parts = urllib.parse.urlparse(url)
    try:
        __import__("psycopg2")  # SQLAlchemy's PostgreSQL driver
        socket.create_connection((parts.hostname or "localhost", parts.port or 5432), 1).close()
    except (ImportError, OSError):
        return None
    return url


def worker(study, root, storage):
    return subprocess.Popen(
        [sys.executable, "-m", "gan.ablate", f"--study={study}", f"--root={root}", "--worker",
         "--heartbeat_seconds=1"] + ([f"--storage={storage}"] if storage else []),
        cwd=REPO, env=user_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def wait_for(predicate, what, process=None, seconds=300):
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        assert process is None or process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.2)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tuned(request, tmp_path_factory):
    """The tuned study, its storage shared by two workers, one killed mid-trial; then the main
    command. Returns (study path, root, storage URL or None, (the surviving worker's output, the
    killed trial's run directory), the main command's output)."""
    storage = None
    if request.param == "postgresql":
        storage = postgres_url()
        if storage is None:
            pytest.skip("no PostgreSQL server reachable (set GAN_TEST_POSTGRES_URL)")
        name = f"gan_test_{os.getpid()}_{int(time.time())}"
        storage = f"{storage}?application_name={name}"
    folder = str(tmp_path_factory.mktemp("tuned"))
    path, root = os.path.join(folder, "tuned.toml"), os.path.join(folder, "root")
    with open(path, "w") as f:
        f.write(TUNED_STUDY.format(base=os.path.join(REPO, "experiments", "mnist_mlp.flags")))
    workers = [worker(path, root, storage) for _ in range(2)]
    # The first trial with a checkpoint to resume from: its worker (the holder of the trial's
    # runner lock) is killed mid-trial.
    checkpoints = os.path.join(root, "tune", "*", "trial=*,seed=100", "checkpoints",
                               "ckpt-10.index")
    wait_for(lambda: glob.glob(checkpoints), "a trial's first checkpoint", workers[0])
    trial_dir = os.path.dirname(os.path.dirname(glob.glob(checkpoints)[0]))
    with open(os.path.join(trial_dir, ".lock")) as f:
        holder = json.load(f)["pid"]
    killed = next(w for w in workers if w.pid == holder)
    survivor = next(w for w in workers if w is not killed)
    killed.kill()
    killed.communicate()
    output = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, output[-3000:]
    main = run_module("gan.ablate", f"--study={path}", f"--root={root}",
                      *([f"--storage={storage}"] if storage else []))
    return path, root, storage, (output, trial_dir), main.stdout


def trials_of(root, storage, arm):
    url = storage or "sqlite:///" + os.path.join(root, "tune.db")
    names = [s.study_name for s in optuna.get_all_study_summaries(url)
             if s.study_name.split(":")[1] == arm]
    assert len(names) == 1
    return optuna.load_study(study_name=names[0], storage=url).get_trials()


def test_the_killed_workers_trial_is_retried_from_its_checkpoint_and_nothing_is_lost(tuned):
    _, root, storage, worker_output, _ = tuned
    for arm in ARMS:
        trials = trials_of(root, storage, arm)
        states = [t.state.name for t in trials]
        # The declared budget: 4 trials that finished (completed or pruned) per arm.
        assert states.count("COMPLETE") + states.count("PRUNED") == 4, states
        assert set(states) <= {"COMPLETE", "PRUNED", "FAIL"}
    worker_output, trial_dir = worker_output
    arm = os.path.basename(os.path.dirname(trial_dir))
    number = int(os.path.basename(trial_dir).split(",")[0].split("=")[1])
    trials = trials_of(root, storage, arm)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [number]  # the killed worker's trial, marked failed
    retry = [t for t in trials if t.user_attrs.get("runs_of_trial") == number
             and t.number != number]
    assert len(retry) == 1 and retry[0].params == failed[0].params
    assert retry[0].state.name in ("COMPLETE", "PRUNED")
    other = next(a for a in ARMS if a != arm)
    assert not [t for t in trials_of(root, storage, other) if t.state.name == "FAIL"]
    # The retry resumed the killed trial's training (it did not start over).
    with open(os.path.join(trial_dir, "train.log")) as f:
        assert "Resumed from" in f.read()
    # The survivor ran no trial that failed.
    assert not [line for line in worker_output.splitlines()
                if line.startswith("tune ") and " fail" in line]


def read_rows(folder):
    with open(os.path.join(folder, "results.csv")) as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def test_each_arms_winner_trains_on_fresh_seeds_and_results_md_shows_the_tuning(tuned):
    _, root, storage, _, output = tuned
    rows = read_rows(root)
    assert sorted(rows) == sorted(FINAL_RUNS)
    assert {row["status"] for row in rows.values()} == {"done"}
    with open(os.path.join(root, "results.md")) as f:
        markdown = f.read()
    assert "## Tuning" in markdown and "## Analysis" in markdown
    trial_runs = len(glob.glob(os.path.join(root, "records", "tune", "*", "*.json")))
    assert re.search(rf"; tuning: [0-9.]+ min over {trial_runs} trial runs\n", markdown)
    assert "successive halving pruner" in markdown and "evaluated at 20, 40 steps" in markdown
    for arm in ARMS:
        trials = trials_of(root, storage, arm)
        best = min((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
        line = next(line for line in markdown.splitlines() if line.startswith(f"| `{arm}` | 4 |"))
        assert f"{best.value:.2f} (trial {best.number})" in line
        # The final runs train with the winner's settings.
        with open(os.path.join(root, f"{arm},seed=0", "run.flags")) as f:
            flags = f.read()
        for name, value in best.params.items():
            assert f"--{name}={value!r}" in flags or f"--{name}={value}" in flags
        # Only the arm that declares its own tuned flag draws it.
        assert ("r1_weight" in best.params) == (arm == "d_loss=hinge"), best.params
    assert "and each arm's own: [axes.d_loss.hinge] r1_weight uniform [0.0, 1.0]" in markdown
    assert "| `d_loss=hinge` | `d_loss=minimax` | 3 vs 3 |" in markdown
    assert "this n detects about" in markdown or "equivalent within" in markdown \
        or "better" in markdown or "worse" in markdown
    assert os.path.getsize(os.path.join(root, "tuning.png")) > 1000


def test_the_records_alone_rebuild_the_report_and_continue_the_study(tuned, tmp_path):
    path, root, storage, _, _ = tuned
    if storage:
        pytest.skip("the records are the same whatever the storage")
    # A new machine: the committed study folder (records) without any run directory or storage.
    moved = str(tmp_path / "root")
    shutil.copytree(os.path.join(root, "records"), os.path.join(moved, "records"))
    assert glob.glob(os.path.join(moved, "records", "tune", ARMS[0], "trial=*.json"))
    report = run_module("gan.ablate", f"--study={path}", f"--root={moved}", "--report_only")
    assert "wrote" in report.stdout
    assert filecmp.cmp(os.path.join(root, "results.csv"), os.path.join(moved, "results.csv"),
                       shallow=False)
    assert filecmp.cmp(os.path.join(root, "mosaic.png"), os.path.join(moved, "mosaic.png"),
                       shallow=False)
    with open(os.path.join(root, "results.md")) as f, \
            open(os.path.join(moved, "results.md")) as g:
        old, new = f.read().splitlines(), g.read().splitlines()
    assert [line for line in old if not line.startswith("- Command")] == \
        [line for line in new if not line.startswith("- Command")]
    # Continued there, the study has nothing left to train: each winner's run is finished by
    # its record (what `gan.ablate` skips; in-process here, as its runner does it).
    from gan.study import plan as plan_lib
    from gan.study import records, runner as runner_lib, tuning
    study = plan_lib.load_study(path)
    runs = plan_lib.plan(study)
    summary = summary_lib.read_summary(study, os.path.join(moved, "records"), runs)
    assert summary is not None
    runner = runner_lib.Runner(moved, study=study, echo=lambda line: None)
    for run in tuning.apply(runs, summary_lib.winners(summary)):
        assert records.read(runner.records_dir, run) is not None
        assert runner.run_one(run) == {"status": "done", "reason": "", "skipped": True,
                                       "recorded": True}
    assert not os.path.exists(os.path.join(moved, "tune.db"))
    assert not [name for name in os.listdir(moved) if "seed=" in name or name == "tune"]


# A study that takes the tuned study's hinge winner for one arm, on the same settings, so
# that its runs are the tuned study's final ones.
TAKER = """
base = "{base}"
seeds = [0, 1]
""" + TUNED_STUDY[TUNED_STUDY.index("[settings]"):TUNED_STUDY.index("[axes")] + """
[axes.d_loss.tuned_hinge]
d_loss = "hinge"
winner_of = {{ study = "tuned/tuned.toml", arm = "d_loss=hinge" }}
[axes.d_loss.slow_hinge]
d_loss = "hinge"
d_learning_rate = 1e-5
"""


def test_an_arm_trains_another_studys_tuned_winner_from_its_committed_records(tuned, tmp_path):
    path, root, storage, _, _ = tuned
    if storage:
        pytest.skip("the records are the same whatever the storage")
    from gan.study import plan as plan_lib
    from gan.study import tuning
    # The tuned study as committed: its file beside its output folder of records, no root.
    folder = tmp_path / "tuned"
    folder.mkdir()
    with open(path) as f:
        (folder / "tuned.toml").write_text('output = "out"\n' + f.read())
    shutil.copytree(os.path.join(root, "records"), str(folder / "out" / "records"))
    tuned_study = plan_lib.load_study(str(folder / "tuned.toml"))
    tuned_runs = plan_lib.plan(tuned_study)
    summary = summary_lib.read_summary(tuned_study, str(folder / "out" / "records"), tuned_runs)
    winner = summary["arms"]["d_loss=hinge"]["winner"]
    assert set(winner) == {"g_learning_rate", "d_learning_rate", "r1_weight"}
    # Its final hinge runs train exactly what the taker's arm trains, seed for seed.
    finals = {run.seed: run.config
              for run in tuning.apply(tuned_runs, summary_lib.winners(summary))
              if run.config_name == "d_loss=hinge"}
    base = os.path.join(REPO, "experiments", "mnist_mlp.flags")
    taker_path = tmp_path / "taker.toml"
    taker_path.write_text(TAKER.format(base=base))
    taker = plan_lib.plan(plan_lib.load_study(str(taker_path)))
    taken = [run for run in taker if run.config_name == "d_loss=tuned_hinge"]
    assert [run.config for run in taken] == [finals[run.seed] for run in taken]
    assert taken[0].config.g_opt.learning_rate == winner["g_learning_rate"]
    # Not a tuned arm of the taker's: nothing in it is tuned again. Its results.md says whose
    # winner it trains.
    assert all(not run.space for run in taker)
    from gan.study import report
    assert report._winner_lines(plan_lib.load_study(str(taker_path))) == [
        "- `d_loss=tuned_hinge` trains the tuned winner of `d_loss=hinge` in "
        f"`{os.path.relpath(folder / 'tuned.toml')}` (its records/tuning.json): "
        + ", ".join(f"{name}={value:.3g}" for name, value in sorted(winner.items()))]
    # [settings] may take a winner too, leaving out what the study sets itself.
    shared = TAKER.replace('winner_of = {{ study = "tuned/tuned.toml", arm = "d_loss=hinge" }}\n',
                           "").replace("[settings]\n", '[settings]\nwinner_of = {{ study = '
                                       '"tuned/tuned.toml", arm = "d_loss=hinge", except = '
                                       '["d_learning_rate"] }}\n')
    shared = shared.replace('d_loss = "hinge"\n[axes', 'd_loss = "hinge"\nd_learning_rate = 2e-4'
                            '\n[axes')
    taker_path.write_text(shared.format(base=base))
    runs = plan_lib.plan(plan_lib.load_study(str(taker_path)))
    assert {run.config.d_opt.learning_rate for run in runs} == {2e-4, 1e-5}
    assert {run.config.g_opt.learning_rate for run in runs} == {winner["g_learning_rate"]}

    def refusal(text, edit=None, file=taker_path):
        """The one line that planning the taker gives, naming the file at fault."""
        taker_path.write_text((text if edit is None else text.replace(*edit)).format(base=base))
        with pytest.raises(plan_lib.StudyError) as raised:
            plan_lib.plan(plan_lib.load_study(str(taker_path)))
        message = str(raised.value)
        assert message.startswith(str(file)) and "\n" not in message, message
        return message

    assert ("--d_learning_rate is set by both [axes.d_loss.tuned_hinge] winner_of and "
            "[axes.d_loss.tuned_hinge]") in refusal(TAKER, ('d_loss = "hinge"\nwinner_of',
                                                            'd_loss = "hinge"\nd_learning_rate '
                                                            '= 3e-4\nwinner_of'))
    assert "--g_learning_rate is set by both [axes.d_loss.tuned_hinge] winner_of and [settings]" \
        in refusal(TAKER, ("num_steps = 40", "num_steps = 40\ng_learning_rate = 3e-4"))
    assert "tuned has no tuned arm 'd_loss=minimx'; expected one of d_loss=minimax, d_loss=hinge" \
        in refusal(TAKER, ("arm = \"d_loss=hinge\"", "arm = \"d_loss=minimx\""))
    assert "except = [...] names --d_steps, which the winner does not set" in refusal(
        TAKER, ('arm = "d_loss=hinge" }}', 'arm = "d_loss=hinge", except = ["d_steps"] }}'))
    assert "expected winner_of = { study =" in refusal(
        TAKER, ('{{ study = "tuned/tuned.toml", arm = "d_loss=hinge" }}', '"tuned/tuned.toml"'))
    assert "study file" in refusal(TAKER, ("tuned/tuned.toml", "tuned/gone.toml"))
    shutil.rmtree(str(folder / "out"))
    assert "tuned is not tuned yet: " in refusal(TAKER)
    assert "expected its tuning first (python -m gan.ablate --study=" in refusal(TAKER)
    # Two studies that take each other's winners: neither is tuned on its own.
    (folder / "tuned.toml").write_text((folder / "tuned.toml").read_text().replace(
        '[axes.d_loss.minimax]\nd_loss = "minimax"\n',
        '[axes.d_loss.minimax]\nd_loss = "minimax"\nwinner_of = { study = "../taker.toml", '
        'arm = "d_loss=slow_hinge" }\n'))
    assert "takes a winner from this study in turn" in refusal(TAKER,
                                                               file=folder / "tuned.toml")


def study_error(folder, text):
    """The StudyError that reading and planning a study file raise (gan.ablate prints it as its
    one line)."""
    from gan.study import plan as plan_lib
    path = folder / "tuned.toml"
    path.write_text(text.format(base=os.path.join(REPO, "experiments", "mnist_mlp.flags")))
    with pytest.raises(plan_lib.StudyError) as raised:
        plan_lib.plan(plan_lib.load_study(str(path)))
    return str(raised.value)


@pytest.mark.parametrize("edit, message", [
    (("trials = 4", "trials = 0"), "expected trials = N (>= 1) per configuration"),
    (("seeds = [100]", "seeds = [0]"), "seeds [0] are also the study's seeds; expected tuning "
                                       "seeds that the final runs do not use"),
    (("min_steps = 20", "min_steps = 80\nsteps = 40"), "expected min_steps = N in [1, steps]"),
    (("reduction_factor = 2", "reduction_factor = 1"), "expected reduction_factor = N (>= 2)"),
    (('sampler = "random"', 'sampler = "grid"'), "expected sampler = one of 'tpe', 'random'"),
    (("sampler_seed = 0", 'sampler_seed = 0\npruner = "median"'),
     "expected pruner = one of 'successive_halving', 'hyperband'"),
    (("sampler_seed = 0", "sampler_seed = 0\nbudget = 3"), "unknown key 'budget'"),
    (("g_learning_rate = {{ log_uniform = [1e-4, 1e-3] }}",
      "g_learning_rate = {{ log_uniform = [0.0, 1e-3] }}"),
     "[low, high] with low < high and low > 0"),
    (("[tune.space]", "[tune.space]\nnum_steps = {{ int = [10, 20] }}"),
     "the tuning schedule sets it"),
    (("[tune.space]", "[tune.space]\nd_hidden_typo = {{ choices = [1, 2] }}"), "unknown flag"),
    (("[tune.space]", "[tune.space]\ng_loss = {{ choices = ['minimax'] }}"),
     "two or more distinct values"),
    (("[tune.space]", "[tune.space]\nd_beta1 = {{ uniform = [0.5, 1.5] }}"),
     "[tune.space] d_beta1 = 1.5: --d_beta1=1.5"),
    (("[tune.space]", "[tune.space]\nd_loss = {{ choices = ['minimax', 'hinge'] }}"),
     "--d_loss is set by both axis 'd_loss' and [tune.space]"),
    (("[tune.space]", "[tune.space]\nr1_weight = {{ uniform = [0.0, 2.0] }}"),
     "--r1_weight is set by both axis 'd_loss' and [tune.space]"),
    (("r1_weight = {{ uniform = [0.0, 1.0] }}", "r1_weight = {{ uniform = [1.0, 0.0] }}"),
     "[axes.d_loss.hinge] r1_weight: uniform = [1.0, 0.0]: expected [low, high] with low < high"),
    (("r1_weight = {{ uniform = [0.0, 1.0] }}", "r1_weight = {{ uniform = [0.0, -1.0e3] }}"),
     "expected [low, high] with low < high"),
    (("r1_weight = {{ uniform = [0.0, 1.0] }}", "r1_weight = {{ uniform = [-1.0, 1.0] }}"),
     "d_loss=hinge: [tune] r1_weight = -1.0: --r1_weight=-1.0"),
    ((TUNED_STUDY[TUNED_STUDY.index("[tune]"):TUNED_STUDY.index("[analysis]")], ""),
     "[axes.d_loss.hinge] tunes --r1_weight, but the study has no [tune] section"),
])
def test_a_bad_tune_section_is_one_line(tmp_path, edit, message):
    old, new = edit
    assert old in TUNED_STUDY
    error = study_error(tmp_path, TUNED_STUDY.replace(old, new))
    assert message in error and "\n" not in error, error


def test_an_arm_with_nothing_to_tune_is_a_control_trained_as_declared(tmp_path):
    from gan.study import plan as plan_lib
    from gan.study import tuning
    shared = TUNED_STUDY[TUNED_STUDY.index("[tune.space]"):TUNED_STUDY.index("[analysis]")]
    study_text = TUNED_STUDY.replace(shared, "").replace("[axes.d_loss.minimax]\n", "").replace(
        'd_loss = "minimax"\n\n', "[axes.d_loss.control]\nd_loss = \"hinge\"\n"
        "d_learning_rate = 4e-4\n\n").replace('baseline = "d_loss=minimax"',
                                               'baseline = "d_loss=control"')
    path = tmp_path / "tuned.toml"
    path.write_text(study_text.format(base=os.path.join(REPO, "experiments", "mnist_mlp.flags")))
    study = plan_lib.load_study(str(path))
    runs = plan_lib.plan(study)
    assert list(summary_lib.arms(study, runs)) == ["d_loss=hinge"]
    control = next(run for run in runs if run.config_name == "d_loss=control")
    assert control.config.d_opt.learning_rate == 4e-4 and not control.space
    summary = {"order": ["d_loss=hinge"], "arms": {"d_loss=hinge": {
        "winner": {"r1_weight": 0.5}, "winner_trial": 0, "winner_value": 1.0,
        "trials": [{"state": "complete"}]}}}
    text = "\n".join(tuning.summary_lines(study, summary, runs))
    assert "Trained as declared, with nothing to tune: `d_loss=control`." in text
    assert "| `d_loss=hinge` | 1 | 1 / 0 | 0 | 1.00 (trial 0) | r1_weight=0.5 |" in text
    tuned = tuning.apply(runs, summary_lib.winners(summary))
    assert [run.config for run in tuned if run.config_name == "d_loss=control"] == \
        [run.config for run in runs if run.config_name == "d_loss=control"]
    # With no arm's flag to tune either, the [tune] section tunes nothing: one line.
    error = study_error(tmp_path, study_text.replace("r1_weight = {{ uniform = [0.0, 1.0] }}",
                                                     ""))
    assert "[tune]: no [tune.space] and no axis variant tunes a flag" in error, error


def test_a_retry_of_an_interrupted_trial_runs_once_and_counts_once(tmp_path, monkeypatch):
    """A trial stopped by a signal is enqueued again with its attributes; the retry must not
    take the old attempt's interruption for its own, or it is enqueued again on completing. The
    console says so in the trial's one line, with no traceback."""
    from gan.study import plan as plan_lib
    from gan.study import tuning
    path = tmp_path / "tuned.toml"
    path.write_text(TUNED_STUDY.format(base=os.path.join(REPO, "experiments", "mnist_mlp.flags")))
    study = plan_lib.load_study(str(path))
    arm_run = summary_lib.arms(study, plan_lib.plan(study))["d_loss=minimax"]

    class Runner:  # the first training is stopped by a signal; the rest finish
        stopping, records_dir, calls = False, str(tmp_path / "records"), []

        def run_one(self, run):
            self.calls.append(run.name)
            return {"status": "interrupted" if len(self.calls) == 1 else "done"}
    monkeypatch.setattr(tuning, "_fid_at", lambda records_dir, run, step: 600.0 - step)
    storage = tuning.open_storage("sqlite:///" + str(tmp_path / "tune.db"))
    lines, printed = [], []
    # Whatever Optuna's logger lets through reaches the console; a handler of our own sees it.
    handler = logging.Handler()
    handler.emit = printed.append
    logging.getLogger("optuna").addHandler(handler)
    try:
        assert tuning.tune_arm(study, Runner(), storage, arm_run, echo=lines.append)
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert lines[0].startswith("tune d_loss=minimax: trial 0 fail: interrupted, tried again"), lines
    assert not [r for r in printed if r.exc_info], [r.getMessage() for r in printed]
    trials = tuning.optuna_study(study, storage, arm_run).get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert [t.state.name for t in trials].count("FAIL") == 1
    # Trial 1 is the retry of trial 0, in its run directories.
    assert sorted(t.user_attrs["runs_of_trial"] for t in finished) == [0, 2, 3, 4]
    assert len(trials) == 5


def test_the_tuning_commands_mistakes_are_one_line(tmp_path):
    path = tmp_path / "tuned.toml"
    path.write_text(TUNED_STUDY.format(base=os.path.join(REPO, "experiments", "mnist_mlp.flags")))
    result = run_module("gan.ablate", f"--study={path}", f"--root={tmp_path / 'root'}",
                        "--report_only", check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the tuning of its configurations is not finished" in result.stderr
    # A storage that cannot be opened is a StudyError, which gan.ablate prints as its one line.
    from gan.errors import StudyError
    from gan.study import tuning
    with pytest.raises(StudyError, match=r"^--storage=nosuchdb://nowhere: cannot be opened: "):
        tuning.open_storage("nosuchdb://nowhere")


def test_without_optuna_a_tuned_study_names_the_install_command(monkeypatch):
    from gan.errors import MissingPackage
    from gan.study import tuning
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    with pytest.raises(MissingPackage, match=r'needs Optuna: pip install -e "\.\[study\]"'):
        tuning.open_storage("sqlite://")


def test_a_study_whose_arms_declare_their_whole_space_describes_only_theirs():
    # d_norm_tuned declares no shared [tune.space]: each tuned arm declares its own.
    from gan.study import plan as plan_lib, tuning
    study = plan_lib.load_study(os.path.join(REPO, "experiments", "ablations",
                                             "d_norm_tuned.toml"))
    runs = plan_lib.plan(study)
    summary = summary_lib.read_summary(
        study, os.path.join(REPO, "experiments", "ablations", "d_norm_tuned", "records"), runs)
    assert summary is not None, "the committed tuning.json no longer matches the study file"
    first = tuning.summary_lines(study, summary, runs)[0]
    assert ("pruner) over: each arm's own: [axes.d_norm.batch] g_learning_rate log-uniform "
            "[3e-05, 0.001];") in first, first
    assert "over: ;" not in first and "and each arm's own" not in first
