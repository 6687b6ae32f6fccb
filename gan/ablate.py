r"""Ablation studies as one command:

    python -m gan.ablate --study=experiments/ablations/seed_quirks.toml --root=runs/seed_quirks

A study file (TOML) names a base flagfile, the axes to sweep, the seeds and any settings every
run shares:

    description = "What the tutorial's choices cost."
    base = "../seed.flags"              # relative to the study file
    seeds = [0, 1, 2]

    [settings]                          # applied to every run, e.g. the step budget
    num_steps = 10000

    [axes]
    d_update = ["split", "joint"]       # a flag and its values

    [axes.optimizer.sgd]                # named variants: each a set of flags
    g_optimizer = "sgd"
    g_learning_rate = 0.01
    [axes.optimizer.adam]
    g_optimizer = "adam"
    g_learning_rate = 2e-4

    [report]                            # optional: more curves than FID, e.g. the first steps
    curves = ["train/g_grad_norm"]
    curve_max_step = 1000
    findings = '''What the numbers say, written once they are in (goes into results.md).'''

    [references.keras_sgd]              # optional: an outside implementation, scored alike
    command = "python experiments/keras_seed.py --seed={seed} --samples_out={samples}"

The runs are the cartesian product of the axes, times the seeds. A reference is a command that
writes uint8 [N, 28, 28] samples to {samples} (given {seed}; {python} is the runner's
interpreter); `gan.evaluate --samples` scores them
with the same metrics, and each seed of it is a row of the results. Each trains in its own logdir,
<root>/<axis>=<value>,...,seed=<n>, as a `python -m gan.train` process (so a crash or divergence
is that run's, not the study's), with a lock per run so two runners never train the same one.
A finished or diverged run is skipped when the study is run again; an interrupted one resumes
from its checkpoint. Then the results go to the root (see `gan.study.report`): results.csv,
results.md, mosaic.png, fid.png and the TensorBoard HParams configuration.

Every finished run leaves a record in the study's folder (`output = "..."` in the study file,
else the root): a run with a record of its settings is finished on any machine, and
`--report_only` reports from the records alone. A study with `[tune]` first tunes each
configuration on its own budget of Optuna trials, then trains each winner on the study's seeds
(see docs/ablations.md). `winner_of = { study = "...", arm = "..." }` in `[settings]` or a
variant takes another study's tuned winner from that study's committed records.

Beyond one machine: `--print_commands` prints one shell command per run and `--launcher=slurm`
writes a Slurm job array of them; each is `gan.ablate --only=<run>`, and `--report_only`
collects the results afterwards. A tuned study is shared by `--worker` processes on one
`--storage`.

This module is the command line; the study code is the `gan.study` package.
"""

import os
import shlex
import signal
import sys

from absl import flags

from gan import cli, distribute, files, rundir
from gan import config as config_lib
from gan.errors import MissingPackage, StudyError
from gan.study import launchers, records, report, tuning
from gan.study import plan as plan_lib
from gan.study import summary as summary_lib
from gan.study.runner import Runner

PROGRAM = "gan.ablate"
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("study", None, "Study file (TOML), e.g. "
                        "experiments/ablations/seed_quirks.toml.")
    flags.DEFINE_string("root", None, "Directory for the study's runs and results; default "
                        "runs/<study name>.")
    flags.DEFINE_integer("parallel", None, "Runs trained at the same time, each with its "
                         "TensorFlow threads capped to cores/parallel; default: one per core "
                         "(fewer when fewer runs are left or memory is short), the fastest on "
                         "a CPU. A tuning trains its trials one at a time, on every core.",
                         lower_bound=1)
    flags.DEFINE_integer("threads_per_run", None, "TensorFlow threads per run; default "
                         "cores/--parallel.", lower_bound=1)
    flags.DEFINE_string("only", None, "Train just this run (its directory name), e.g. as one "
                        "task of a job array; no report.")
    flags.DEFINE_boolean("report_only", False, "Train nothing: collect the results of the runs "
                         "there are.")
    flags.DEFINE_boolean("print_commands", False, "Print one shell command per run (for any "
                         "scheduler) and exit.")
    flags.DEFINE_enum("launcher", "local", ["local", "slurm"], "local: train here; slurm: "
                      "write <root>/slurm_array.sh, a job array with one task per run, and exit.")
    flags.DEFINE_enum("strategy", None, list(distribute.STRATEGIES), "Train every run under this "
                      "tf.distribute strategy (gan.train's --strategy), whatever the study file "
                      "says; where a run trains is not part of its identity.")
    flags.DEFINE_integer("cpu_replicas", None, "gan.train's --cpu_replicas for every run.",
                         lower_bound=0)
    flags.DEFINE_string("tpu", None, "gan.train's --tpu for every run.")
    flags.DEFINE_string("storage", None, "A study with [tune]: the Optuna storage its trials "
                        "share, any database URL Optuna takes (e.g. "
                        "postgresql://user:password@host/db); default: the SQLite file "
                        "<root>/tune.db.")
    flags.DEFINE_boolean("worker", False, "Be one of several processes (on one machine or "
                         "many, sharing --storage and the root) that tune and train the study: "
                         "take what no other has taken, write no report.")
    flags.DEFINE_boolean("warm_start", True, "Start each training as a fork of a process that "
                         "has TensorFlow imported already (gan.study.warm): the same training "
                         "as python -m gan.train, without its seconds of start-up; "
                         "--nowarm_start starts each as its own python -m gan.train.")
    flags.DEFINE_integer("heartbeat_seconds", 60, "A study with [tune]: a trial whose worker "
                         "sent no heartbeat for twice this long is failed and retried.",
                         lower_bound=1)
    flags.mark_flag_as_required("study")


def placement_flags():
    """The placement flags given to this runner, to pass on to the commands it prints."""
    return [f"--{name}={FLAGS[name].value}" for name in ("strategy", "cpu_replicas", "tpu")
            if FLAGS[name].value is not None]


def load_runs():
    """(study, its planned runs with the placement flags applied); a mistake is one line."""
    try:
        if FLAGS.strategy == "multi_worker":
            raise StudyError("--strategy=multi_worker: a multi-worker run needs one process per "
                             "worker, which this runner does not start; train such a run with "
                             "gan.train on each worker (see BUILD.md)")
        study = plan_lib.load_study(FLAGS.study)
        runs = launchers.with_placement(plan_lib.plan(study), strategy=FLAGS.strategy,
                                        cpu_replicas=FLAGS.cpu_replicas, tpu=FLAGS.tpu)
    except config_lib.ConfigError as e:
        cli.fail(PROGRAM, e.lines)
    except StudyError as e:
        cli.fail(PROGRAM, str(e).splitlines()[:1])
    return study, runs


def check_root(root, runs):
    if os.path.isfile(os.path.join(root, rundir.CONFIG_FILE)):
        cli.fail(PROGRAM, [f"--root={root} holds a gan.train run ({rundir.CONFIG_FILE}); expected "
                           "a study's root, a directory of runs (an empty or new one to start)"])
    escaped = plan_lib.outside_root(root, runs)
    if escaped:
        cli.fail(PROGRAM, [f"--root={root}: run {escaped[0].name} would be written to "
                           f"{escaped[1]}, outside the root (a symbolic link?); expected every "
                           "run directory inside it"])
    error = files.check_output_dir(root, "root")
    if error:
        cli.fail(PROGRAM, [error])


def select_only(study, runs):
    selected = [run for run in runs if run.name == FLAGS.only]
    if not selected:
        cli.fail(PROGRAM, [f"--only={FLAGS.only}: not a run of {study.path}; its runs are "
                           f"{', '.join(run.name for run in runs[:4])}"
                           + (", ..." if len(runs) > 4 else "")])
    return selected


def write_slurm_array(study, root, runs):
    path = os.path.join(root, "slurm_array.sh")
    files.write_atomically(path, launchers.slurm_script(
        study, root, runs, extra_flags=placement_flags()).encode())
    os.chmod(path, 0o755)
    print(f"wrote {path}: a job array of {len(runs)} runs; submit it with `sbatch {path}`, "
          f"then collect the results with --report_only")


def make_runner(study, root):
    """The runner; a signal makes its trainings checkpoint and stop."""
    runner = Runner(root, FLAGS.parallel, FLAGS.threads_per_run, study=study,
                    warm=FLAGS.warm_start)

    def on_signal(signum, frame):
        print(f"{signal.Signals(signum).name}: asking the trainings to checkpoint and stop",
              flush=True)
        runner.stop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    return runner


def stop_if_stopped(runner):
    if runner.stopping:
        print("stopped; rerun the same command to resume the study", flush=True)
        sys.exit(1)


def train_here(study, root, runs, runner):
    runner.plan(runs)
    print(f"{study.name}: {len(runs)} runs in {root}, {runner.parallel} at a time with "
          f"{runner.threads} TensorFlow thread(s) each", flush=True)
    runner.run_all(runs)
    stop_if_stopped(runner)


def tuned_runs(study, root, runs, runner):
    """(the runs with each arm's winning settings, the tuning's summary): from the records when
    they hold the tuning, else tuned here first (with the other workers)."""
    summary = summary_lib.read_summary(study, records.directory(study, root), runs)
    if summary is None and (FLAGS.report_only or FLAGS.only or runner is None):
        cli.fail(PROGRAM, [f"{study.path}: the tuning of its configurations is not finished "
                           f"(no {summary_lib.SUMMARY} of these settings in "
                           f"{records.directory(study, root)}); run gan.ablate without "
                           "--report_only or --only (or --worker processes) to finish it"])
    if summary is None:
        try:
            storage = tuning.open_storage(tuning.storage_url(root, FLAGS.storage),
                                          FLAGS.heartbeat_seconds)
            print(f"{study.name}: tuning {len(summary_lib.arms(study, runs))} configurations, "
                  f"{study.tune.trials} trials each, in {tuning.storage_url(root, FLAGS.storage)}",
                  flush=True)
            tuning.tune(study, runner, storage, runs, runner.echo,
                        poll_seconds=min(5, FLAGS.heartbeat_seconds))
        except (StudyError, MissingPackage) as e:
            cli.fail(PROGRAM, str(e).splitlines()[:1])
        stop_if_stopped(runner)
        summary = summary_lib.read_summary(study, records.directory(study, root), runs)
    return tuning.apply(runs, summary_lib.winners(summary)), summary


def main(argv):
    del argv
    study, runs = load_runs()
    root = FLAGS.root or os.path.join("runs", study.name)
    check_root(root, runs)
    error = study.output and files.check_output_dir(study.output, "output")
    if error:
        cli.fail(PROGRAM, [f"{study.path}: {error}"])
    if FLAGS.only:
        runs = select_only(study, runs)
    if study.tune and (FLAGS.print_commands or FLAGS.launcher == "slurm"):
        cli.fail(PROGRAM, [f"{study.path} tunes its configurations ([tune]): spread it over "
                           "machines with gan.ablate --worker processes sharing --storage and "
                           "the root, not --print_commands or --launcher=slurm"])
    if FLAGS.print_commands:
        print("\n".join(launchers.run_commands(FLAGS.study, root, runs,
                                               extra_flags=placement_flags())))
        return
    if FLAGS.launcher == "slurm":
        write_slurm_array(study, root, runs)
        return
    runner = None if FLAGS.report_only else make_runner(study, root)
    summary = None
    if study.tune:
        runs, summary = tuned_runs(study, root, runs, runner)
        if FLAGS.only:
            runs = select_only(study, runs)
    if runner:
        try:
            train_here(study, root, runs, runner)
        finally:
            runner.close()
    if FLAGS.only or FLAGS.worker:
        return
    command = " ".join(shlex.quote(a) for a in ["python", "-m", PROGRAM] + sys.argv[1:])
    for line in report.write_report(study, root, runs, command, summary):
        print(line, flush=True)


if __name__ == "__main__":
    define_flags()
    cli.run(main, PROGRAM)
