"""Faults a study meets: study files that would write outside the root or mislabel runs, roots
that are not a study's, damaged records, checkpoints whose index is gone, a runner killed
outright. Each is refused in one line before anything is written, or survived without losing a
file the project did not write. Also the study file fuzz: generated study files, status and
record files, and sample files for gan.evaluate --samples."""

import json
import os
import random
import shutil
import threading
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from gan import cli, config, evaluate, events, rundir
from gan.study import hparams as hparams_lib
from gan.study import plan as plan_lib
from gan.study import report as report_lib
from gan.study import rows as rows_lib
from gan.study import runner as runner_lib
from gan.study import status as status_lib
from helpers import REPO, SMALL, assert_clean_failure, run_module, run_train_in_one_process

BASE = os.path.join(REPO, "experiments", "mnist_mlp.flags")
STUDY = """
base = "{base}"
seeds = [0]
[settings]
num_steps = 20
batch_size = 16
[axes.d.adam]
d_learning_rate = 2e-4
"""


def write(folder, text, name="study.toml", base=BASE):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text.replace("{base}", base))
    return path


def refusal(folder, text, name="study.toml", base=BASE):
    """The StudyError of a study file, which gan.ablate prints as its one line."""
    path = write(folder, text, name, base)
    with pytest.raises(plan_lib.StudyError) as raised:
        plan_lib.plan(plan_lib.load_study(path))
    message = str(raised.value)
    assert message.startswith(path) and "\n" not in message, message
    return message


# --- paths ----------------------------------------------------------------------------------------

def test_axis_names_cannot_climb_out_of_the_root(tmp_path):
    for name in ('"../../escaped"', '"/elsewhere/abs"', '"a/b"', '".hidden"', '"x,y"',
                 '"x=y"', '""'):
        message = refusal(str(tmp_path), STUDY + f"\n[axes.{name}.v1]\ng_learning_rate = 1e-4\n")
        assert "expected letters, digits and _ . + - only" in message, message
    message = refusal(str(tmp_path), STUDY + '\n[references."../up"]\ncommand = "x {samples}"\n')
    assert "reference '../up'" in message
    # On the command line: one line, exit 2, and nothing written outside the root.
    path = write(str(tmp_path), STUDY + '\n[axes."../../escaped".v1]\ng_learning_rate = 1e-4\n')
    root = tmp_path / "deep" / "er" / "root"
    result = run_module("gan.ablate", f"--study={path}", f"--root={root}", check=False)
    assert_clean_failure(result, "gan.ablate: error:", "axis '../../escaped'")
    assert sorted(os.listdir(tmp_path)) == ["study.toml"]


def test_a_run_directory_that_is_a_link_out_of_the_root_is_refused(tmp_path):
    path = write(str(tmp_path), STUDY)
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "d=adam,seed=0")
    result = run_module("gan.ablate", f"--study={path}", f"--root={root}", check=False)
    assert_clean_failure(result, "run d=adam,seed=0 would be written to", "outside the root")
    assert os.listdir(outside) == []
    assert plan_lib.outside_root(str(root), plan_lib.plan(plan_lib.load_study(path)))[1] == str(outside)


def test_run_names_past_255_bytes_are_refused_when_the_study_is_read(tmp_path):
    long_label = "v" * 250
    message = refusal(str(tmp_path), STUDY + f"\n[axes.opt.{long_label}]\ng_learning_rate = 1e-4\n")
    assert "expected at most 255" in message


# --- what the report may delete ---------------------------------------------------------------------

def write_scalar_events(folder):
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for step in range(3):
            tf.summary.scalar("train/d_loss", 1.0 / (step + 1), step=step)
    writer.close()
    return events.event_files(str(folder))


def test_the_report_replaces_its_own_hparams_file_and_nothing_else(tmp_path):
    study = plan_lib.load_study(write(str(tmp_path), STUDY))
    root = tmp_path / "root"
    root.mkdir()
    foreign = write_scalar_events(root)
    hparams_lib.write_hparams_config(str(root), study)
    ours = [p for p in events.event_files(str(root)) if p not in foreign]
    assert len(ours) == 1 and events.holds_only(ours[0], "hparams")
    assert not events.holds_only(foreign[0], "hparams")
    time.sleep(1.1)  # event file names carry the second they were made
    hparams_lib.write_hparams_config(str(root), study)
    now = events.event_files(str(root))
    assert foreign[0] in now and ours[0] not in now and len(now) == 2
    assert events.read_scalars(str(root))["train/d_loss"][-1] == (2, pytest.approx(1 / 3))


def test_a_gan_train_logdir_is_not_a_study_root(tmp_path):
    path = write(str(tmp_path), STUDY)
    logdir = tmp_path / "run"
    logdir.mkdir()
    (logdir / rundir.CONFIG_FILE).write_text(json.dumps(config.RunConfig().to_flat()))
    before = write_scalar_events(logdir)
    sizes = {p: os.path.getsize(p) for p in before}
    result = run_module("gan.ablate", f"--study={path}", f"--root={logdir}", "--report_only",
                        check=False)
    assert_clean_failure(result, f"--root={logdir} holds a gan.train run (config.json)")
    assert sorted(os.listdir(logdir)) == sorted([rundir.CONFIG_FILE] + [os.path.basename(p)
                                                                        for p in before])
    assert {p: os.path.getsize(p) for p in before} == sizes


# --- a damaged checkpoint index ---------------------------------------------------------------------

def small_config(**overrides):
    """tests/helpers.SMALL as a RunConfig, for trainings run in this process."""
    return config.from_flagfile(BASE, g_hidden=(64, 128), d_hidden=(128, 64), batch_size=16,
                                eval_every=0, log_every=10, sample_every=1000,
                                jit_compile="false", **overrides)


def test_a_damaged_checkpoint_index_never_restarts_a_run(tmp_path, capsys):
    """The state file overwritten with NUL bytes while ckpt-10 and ckpt-20 load: the readers use
    ckpt-20, and gan.train resumes from it, rewrites the state file from the files, and keeps
    both checkpoints as they were."""
    from gan import run as run_lib
    logdir = str(tmp_path / "run")
    run_lib.train(small_config(num_steps=20, checkpoint_every=10, keep_checkpoints=5), logdir)
    folder = rundir.checkpoint_dir(logdir)
    state_file = os.path.join(folder, rundir.STATE_FILE)
    with open(state_file, "r+b") as f:
        f.write(b"\0" * os.path.getsize(state_file))
    stamps = {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)
              if name.startswith(("ckpt-10.", "ckpt-20."))}
    assert len(stamps) >= 4
    assert tf.train.latest_checkpoint(folder) is None  # what the readers relied on
    assert rundir.load_run(logdir)[2] == os.path.join(folder, "ckpt-20")  # gan.sample, export
    capsys.readouterr()
    result = run_lib.train(small_config(num_steps=30, checkpoint_every=10, keep_checkpoints=5),
                           logdir)
    printed = capsys.readouterr().out
    assert "rewrote it from the checkpoint files (ckpt-10, ckpt-20)" in printed
    assert f"Resumed from {os.path.join(folder, 'ckpt-20')} at step 20" in printed
    assert result.step == 30
    assert {name: os.path.getmtime(os.path.join(folder, name)) for name in stamps} == stamps
    assert tf.train.get_checkpoint_state(folder).all_model_checkpoint_paths[-3:] == [
        os.path.join(folder, f"ckpt-{step}") for step in (10, 20, 30)]
    assert rundir.step_of(rundir.latest_checkpoint(folder)) == 30
    # A SIGKILL between a save and the state file's update leaves the file one behind: the
    # newer checkpoint, complete, is the one resumed from, and no deprecation notice is printed.
    with open(state_file, "w") as f:
        f.write('model_checkpoint_path: "ckpt-20"\nall_model_checkpoint_paths: "ckpt-10"\n'
                'all_model_checkpoint_paths: "ckpt-20"\n')
    capsys.readouterr()
    run_lib.train(small_config(num_steps=40, checkpoint_every=10, keep_checkpoints=5), logdir)
    printed = capsys.readouterr()
    assert f"Resumed from {os.path.join(folder, 'ckpt-30')} at step 30" in printed.out
    assert "ckpt-10, ckpt-20, ckpt-30)" in printed.out and printed.err == "", printed.err


def test_a_full_disk_leaves_no_temporary_checkpoint_behind(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "ckpt-20_temp").mkdir(parents=True)
    (folder / "ckpt-20_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    (folder / "ckpt-10.index").write_bytes(b"")
    rundir.remove_partial_checkpoint(str(folder), 20)
    assert sorted(os.listdir(folder)) == ["ckpt-10.index"]


def test_a_fresh_training_leaves_another_programs_event_file_alone(tmp_path):
    """gan.train purges the records a resume repeats from its own event files only."""
    logdir = tmp_path / "shared"
    logdir.mkdir()
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step in (5, 50):
            tf.summary.scalar("epoch_loss", 0.5, step=step)
    writer.close()
    (foreign,) = events.event_files(str(logdir))
    content = open(foreign, "rb").read()
    from gan import run as run_lib
    assert run_lib.train(small_config(num_steps=10), str(logdir)).step == 10
    assert open(foreign, "rb").read() == content
    assert len(events.event_files(str(logdir))) == 2


def test_evaluate_checks_where_its_results_go_before_evaluating(tmp_path):
    logdir = tmp_path / "run"
    logdir.mkdir()
    (logdir / "eval").write_text("a file where the eval folder goes")
    result = run_module("gan.evaluate", f"--logdir={logdir}", check=False)
    assert_clean_failure(result, f"--logdir={logdir / 'eval'} exists and is not a directory",
                         "or pass --output=FILE.json")


# --- what a study file may say -----------------------------------------------------------------------

def test_two_axes_setting_one_flag_and_variants_that_set_nothing_are_refused(tmp_path):
    folder = str(tmp_path)
    twice = STUDY + ("\n[axes]\ng_learning_rate = [1e-4, 2e-4]\n"
                     "[axes.opt.fast]\ng_learning_rate = 1e-3\n")
    assert "--g_learning_rate is set by both axis 'g_learning_rate' and axis 'opt'" in refusal(
        folder, twice)
    assert "--batch_size is set by both [settings] and axis 'batch_size'" in refusal(
        folder, STUDY + "\n[axes]\nbatch_size = [16, 32]\n")
    assert "sets no flag" in refusal(folder, STUDY.replace("d_learning_rate = 2e-4\n", ""))
    assert "set the same flags to the same values" in refusal(
        folder, STUDY + "[axes.d.also]\nd_learning_rate = 2e-4\n")
    assert "the seeds are set by seeds" in refusal(folder, STUDY + "\n[axes]\nseed = [1, 2]\n")
    assert "[0, 2^63 - 1]" in refusal(folder, STUDY.replace("seeds = [0]", "seeds = [18446744073709551617]"))


def test_base_flagfile_lines_gan_train_refuses_are_refused_by_the_study(tmp_path):
    for label, text, expected in [
            ("bom", "\ufeff--batch_size=16\n", "starts with a byte-order mark (U+FEFF)"),
            ("dashless", "--flagfile=%s\nbatch_size=16\n" % BASE, "'batch_size=16'"),
            ("junk", "--flagfile=%s\njunk line here\n" % BASE, "'junk line here'")]:
        base = tmp_path / f"{label}.flags"
        base.write_text(text, encoding="utf-8")
        message = refusal(str(tmp_path), STUDY, f"{label}.toml", base=str(base))
        assert expected in message and "\ufeff" not in message, message
    # gan.train says the same of the same file.
    outcome = run_train_in_one_process(
        {"bom": [f"--flagfile={tmp_path / 'bom.flags'}", f"--logdir={tmp_path / 'x'}"]},
        str(tmp_path))["bom"]
    assert outcome.returncode == 2 and "byte-order mark" in outcome.stderr
    assert "\ufeff" not in outcome.stderr


def test_out_of_range_shapes_and_seeds_are_one_line(tmp_path):
    cases = {f"{flag}={value}": [*SMALL, f"--{flag}={value}", f"--logdir={tmp_path / flag}"]
             for flag, value in [("grid_size", 1000000), ("latent_dim", 1000000000),
                                 ("seed", 2 ** 64 + 1), ("seed", -1), ("batch_size", 10 ** 9),
                                 ("g_hidden", "64,1000000000"), ("dcgan_width", 100000)]}
    outcomes = run_train_in_one_process(cases, str(tmp_path))
    for name, outcome in outcomes.items():
        flag = name.split("=")[0]
        assert outcome.returncode == 2 and "Traceback" not in outcome.stderr, (name, outcome)
        assert f"--{flag}=" in outcome.stderr, (name, outcome.stderr)
        assert not os.path.exists(tmp_path / flag)


# --- the runner -----------------------------------------------------------------------------------

def planned_run(tmp_path, text=STUDY):
    return plan_lib.plan(plan_lib.load_study(write(str(tmp_path), text)))[0]


def test_a_training_left_by_a_killed_runner_is_waited_for(tmp_path):
    """A rerun right after the runner was SIGKILLed finds the orphaned training still holding
    the run's writer lock: it waits for it instead of starting a training that would be refused
    and recorded as crashed."""
    run = planned_run(tmp_path)
    run_dir = tmp_path / "root" / run.name
    run_dir.mkdir(parents=True)
    orphan = rundir.LogdirLock(str(run_dir))
    orphan.acquire()
    said = []
    runner = runner_lib.Runner(str(tmp_path / "root"), echo=said.append)
    waited = threading.Thread(target=runner._wait_for_earlier_training, args=(run, str(run_dir)))
    start = time.monotonic()
    waited.start()
    time.sleep(1.0)
    assert waited.is_alive()
    orphan.release()
    waited.join(10)
    assert not waited.is_alive() and time.monotonic() - start >= 1.0
    assert said == [f"{run.name}: a training started by an earlier runner still writes it; "
                    "waiting for it to stop"]


def test_an_attempt_counts_from_its_start(tmp_path, monkeypatch):
    run = planned_run(tmp_path)
    runner = runner_lib.Runner(str(tmp_path / "root"), echo=lambda line: None)
    run_dir = tmp_path / "root" / run.name
    seen = []

    def killed(command, where, warm=False):  # as if the runner were SIGKILLed mid-training
        seen.append(status_lib.read_status(where))
        return None
    monkeypatch.setattr(runner, "_execute", killed)
    runner.run_one(run)
    runner.run_one(run)
    assert [s["attempts"] for s in seen] == [1, 2]
    assert status_lib.read_status(str(run_dir))["status"] == "running"


def test_a_structural_change_keeps_the_runs_record_and_names_the_way_out(tmp_path):
    run = planned_run(tmp_path)
    run_dir = tmp_path / "root" / run.name
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "ckpt-20.index").write_bytes(b"")
    trained = run.config.replace(g_hidden=(32,))
    (run_dir / rundir.CONFIG_FILE).write_text(json.dumps(config.to_json_value(trained.to_flat())))
    record = {"status": "done", "flags_digest": "0123", "attempts": 1, "wall_seconds": 5.0}
    status_lib.write_status(str(run_dir), record)
    status = runner_lib.Runner(str(tmp_path / "root"), echo=lambda line: None).run_one(run)
    assert status["status"] == "conflict"
    assert "g_hidden" in status["reason"] and "Move that directory out of the root" in status[
        "reason"] and "--restart" not in status["reason"]
    assert status_lib.read_status(str(run_dir)) == record


def test_a_done_run_without_checkpoints_leaves_the_report_going(tmp_path):
    """The report draws every configuration it can and says which it could not."""
    run = planned_run(tmp_path)
    run_dir = tmp_path / "root" / run.name
    run_dir.mkdir(parents=True)
    (run_dir / rundir.CONFIG_FILE).write_text(json.dumps(config.to_json_value(
        run.config.to_flat())))
    status_lib.write_status(str(run_dir), {"status": "done", "flags_digest": plan_lib.run_digest(run)})
    study = plan_lib.load_study(os.path.join(str(tmp_path), "study.toml"))
    lines = report_lib.write_report(study, str(tmp_path / "root"), [run], "python -m ...")
    assert any(line.startswith("d=adam,seed=0: its record has no samples for the mosaic:")
               and "holds no checkpoint" in line for line in lines), lines
    assert "mosaic.png: no row for d=adam: its record has no samples" in lines
    assert os.path.isfile(tmp_path / "root" / "results.md")


# --- fuzz: study files -----------------------------------------------------------------------------

WRONG_TYPES = ['3', '"text"', "true", "[1, 2]", "1.5", "{a = 1}", "[]", '["a"]']
PIECES = {"base": 'base = "{base}"', "seeds": "seeds = [0]",
          "settings": "[settings]\nnum_steps = 20\nbatch_size = 16",
          "axes": "[axes.d.adam]\nd_learning_rate = 2e-4"}
STUDY_KEYS = ["base", "seeds", "settings", "axes", "references", "report", "description"]
VALID = {("description", '"text"'), ("seeds", "[1, 2]")}


def generated_studies(rng):
    """(label, study text) pairs, each with one mistake: every top-level key given every wrong
    TOML type, then bad axis and variant names, bad values, duplicates and conflicts."""
    for key in STUDY_KEYS:
        for wrong in WRONG_TYPES:
            if (key, wrong) in VALID:
                continue
            rest = "\n".join(piece for name, piece in PIECES.items() if name != key)
            scalars = [line for line in rest.splitlines() if line.startswith(("base", "seeds"))]
            tables = [line for line in rest.splitlines() if line not in scalars]
            yield f"{key}={wrong}", "\n".join([f"{key} = {wrong}", *scalars, *tables]) + "\n"
    names = ["../x", "/abs", "a b", "-lead", "ä", "a\\\\b", "." * 3, "seed", "reference",
             "x" * 300]
    for name in names:
        yield f"axis name {name[:20]!r}", STUDY + f'\n[axes."{name}".v]\ng_learning_rate = 1e-4\n'
    for flag, value in [("batch_size", "0"), ("batch_size", '"big"'), ("g_hidden", "[0]"),
                        ("latent_dim", "1000000000"), ("seed", "-1"), ("g_optimizer", '"adamw"'),
                        ("nope", "1"), ("num_steps", "1.5"), ("d_loss", "3"),
                        ("grid_size", "100000")]:
        yield f"setting {flag}={value}", STUDY.replace("batch_size = 16",
                                                       f"batch_size = 16\n{flag} = {value}")
        yield f"axis {flag}", STUDY + f"\n[axes]\n{flag} = [{value}]\n"
    for seeds in ["[0, 0]", "[-1]", "[]", "[1.5]", "[true]", f"[{2 ** 63}]"]:
        yield f"seeds {seeds}", STUDY.replace("seeds = [0]", f"seeds = {seeds}")
    yield "two axes one flag", STUDY + ("\n[axes.e.x]\nd_learning_rate = 1e-3\n")
    yield "empty axis", STUDY + "\n[axes]\nd_update = []\n"
    yield "duplicate labels", STUDY + '\n[axes]\nd_update = ["joint", "joint"]\n'
    yield "reference without samples", STUDY + '\n[references.k]\ncommand = "echo"\n'
    yield "unknown key", STUDY + "\nsweep = 3\n"
    yield "bad report key", STUDY + "\n[report]\nplots = []\n"
    yield "negative curve step", STUDY + "\n[report]\ncurve_max_step = -1\n"
    for curves in ['["eval/fid"]', '["train/mosaic"]', '["a/x", "b/x"]', '["train/"]', '[".."]']:
        yield f"curves {curves}", STUDY + f"\n[report]\ncurves = {curves}\n"
    for _ in range(10):  # random cuts of the file: TOML errors or missing pieces
        cut = rng.randrange(1, len(STUDY) - 1)
        yield f"cut at {cut}", STUDY[:cut] + "\n[axes\n"


def test_generated_study_files_each_get_one_line(tmp_path):
    rng = random.Random(20261201)
    cases = list(generated_studies(rng))
    assert len(cases) >= 60
    for number, (label, text) in enumerate(cases):
        path = write(str(tmp_path), text, f"case{number}.toml")
        try:
            plan_lib.plan(plan_lib.load_study(path))
        except plan_lib.StudyError as e:
            message = str(e)
            assert message.startswith(path) and "\n" not in message, (label, message)
        except config.ConfigError as e:
            assert len(e.lines) >= 1, label
        else:
            pytest.fail(f"{label}: accepted\n{text}")
    assert sorted(os.listdir(tmp_path)) == sorted(f"case{n}.toml" for n in range(len(cases)))
    # A sample of them through the command line: exit 2, one line, no file outside the root.
    for number in rng.sample(range(len(cases)), 1):
        root = tmp_path / f"root{number}"
        result = run_module("gan.ablate", f"--study={tmp_path / f'case{number}.toml'}",
                            f"--root={root}", check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (cases[number],
                                                                             result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(name.startswith("case") for name in os.listdir(tmp_path))


def generated_records(rng):
    values = [None, 3, -1, 1.5, float("nan"), "text", [], [1], {}, {"status": 3},
              {"status": "done", "flags_digest": 5}, {"attempts": "many"}, {"wall_seconds": -4},
              {"wall_seconds": True}, {"fid": "low"}, {"fid": None}, {"fid": [1]}, "\"",
              {"status": "done", "reason": {"deep": [1, 2]}}]
    for value in values:
        yield json.dumps(value)
    yield "{"
    yield ""
    yield "\0\0\0"
    yield "[" * 100000 + "]" * 100000
    for _ in range(20):
        yield "".join(rng.choice('{}[]":,0123456789abcdefnulltrue ') for _ in range(40))


def test_generated_status_and_record_files_never_stop_the_report(tmp_path):
    text = STUDY + '\n[references.real]\ncommand = "{python} -c pass {samples}"\n'
    study = plan_lib.load_study(write(str(tmp_path), text))
    runs = plan_lib.plan(study)
    root = tmp_path / "root"
    rng = random.Random(7)
    records = list(generated_records(rng))
    for record in records:
        for run in runs:
            run_dir = root / run.name
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / status_lib.STATUS_FILE).write_text(record)
            (run_dir / status_lib.REFERENCE_EVAL).write_text(record)
            status = status_lib.read_status(str(run_dir))
            assert isinstance(status, dict)
            assert all(isinstance(value, status_lib.STATUS_FIELDS[key])
                       for key, value in status.items())
        rows = [rows_lib.run_row(study, run, str(root)) for run in runs]
        summaries = report_lib.config_summaries(rows)
        report_lib.results_markdown(study, rows, summaries, "python -m gan.ablate ...")
    assert len(records) >= 40
    lines = report_lib.write_report(study, str(root), runs, "python -m gan.ablate ...")
    assert any(line.startswith("wrote") and "results.csv" in line for line in lines)


# --- fuzz: gan.evaluate --samples ------------------------------------------------------------------

def generated_sample_files(folder, rng):
    """(label, path) of files that are not uint8 [N, 28, 28] .npy arrays."""
    good = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)

    def saved(name, array):
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            np.save(f, array)
        return path
    yield "npz", os.path.join(folder, "a.npz")
    np.savez(os.path.join(folder, "a.npz"), samples=good)
    zipped = os.path.join(folder, "zip.npy")
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("samples.npy", b"not an array")
    yield "zip named .npy", zipped
    empty = os.path.join(folder, "empty.npy")
    open(empty, "wb").close()
    yield "empty", empty
    whole = open(saved("whole.npy", good), "rb").read()
    for cut in (5, 60, 128, len(whole) - 1):
        path = os.path.join(folder, f"cut{cut}.npy")
        with open(path, "wb") as f:
            f.write(whole[:cut])
        yield f"truncated at {cut}", path
    for dtype in ("float32", "int64", ">u2", "<u2", "bool", "complex64"):
        yield dtype, saved(f"{dtype.strip('<>')}{dtype[0]}.npy", good.astype(dtype))
    yield "object", saved("object.npy", np.array([good, None], dtype=object))
    for shape in ((20, 28), (20, 28, 28, 3), (20, 32, 32), (), (5, 28, 28)):
        yield f"shape {shape}", saved(f"shape{len(shape)}_{sum(shape)}.npy",
                                       np.zeros(shape, np.uint8))
    yield "structured", saved("structured.npy", np.zeros(20, dtype=[("a", "u1"), ("b", "f4")]))
    for number in range(8):
        path = os.path.join(folder, f"noise{number}.npy")
        with open(path, "wb") as f:
            f.write(b"\x93NUMPY" + rng.bytes(int(rng.integers(1, 400))))
        yield f"noise {number}", path
    yield "directory", folder
    yield "missing", os.path.join(folder, "missing.npy")


def test_generated_sample_files_each_get_one_line(tmp_path):
    rng = np.random.default_rng(3)
    cases = list(generated_sample_files(str(tmp_path), rng))
    assert len(cases) >= 30
    for label, path in cases:
        with pytest.raises(rundir.RunError) as raised:
            evaluate.load_samples(path)
        message = str(raised.value)
        assert message.startswith(f"--samples={path}") and "\n" not in message, (label, message)
    for label, path in cases[:1]:  # the npz, through the command line
        result = run_module("gan.evaluate", f"--samples={path}",
                            f"--output={tmp_path / 'out' / 'x.json'}", check=False)
        assert_clean_failure(result, "gan.evaluate: error: --samples=")
        assert not os.path.exists(tmp_path / "out" / "x.json")


def test_gan_sample_range_checks_its_numbers(tmp_path):
    cases = [("--interpolate=20000", "--interpolate=20000 x --interpolation_steps=10")]
    for flag, expected in cases:
        result = run_module("gan.sample", "--logdir=/nonexistent", flag,
                            f"--output={tmp_path / 'x.png'}", check=False)
        assert_clean_failure(result, expected)
    assert cli.USAGE_EXIT_CODE == 2
    shutil.rmtree(tmp_path, ignore_errors=True)
