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
from its checkpoint. Then the results go to the root (see `gan.ablation_report`): results.csv,
results.md, mosaic.png, fid.png and the TensorBoard HParams configuration.

Beyond one machine: `--print_commands` prints one shell command per run and `--launcher=slurm`
writes a Slurm job array of them; each is `gan.ablate --only=<run>`, and `--report_only`
collects the results afterwards.
"""

import ctypes
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

from absl import flags

from gan import ablation_report, build, cli, distribute, images, rundir
from gan import config as config_lib
from gan.errors import StudyError

PROGRAM = "gan.ablate"
STATUS_FILE = "ablate_status.json"
RUN_FLAGFILE = "run.flags"
TRAIN_LOG = "train.log"
RUNNER_LOCK = ".ablate.lock"
# Final states: a rerun of the study does not train these again (unless the run's settings
# changed). "interrupted" and "crashed" runs are retried, resuming from their checkpoints.
FINAL_STATES = ("done", "diverged")

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str
    # (label, {flag: value}) per choice; a flag axis has one flag per choice, named by the axis.
    choices: tuple
    is_flag: bool

    def hparam_value(self, label):
        """The value TensorBoard's HParams dashboard shows: the flag's own value for a flag axis
        (numbers stay numbers, so they sort), the variant's name otherwise."""
        if self.is_flag:
            value = dict(self.choices)[label][self.name]
            if isinstance(value, (bool, int, float, str)):
                return value
        return label


@dataclasses.dataclass(frozen=True)
class Study:
    path: str
    name: str
    description: str
    base: str
    seeds: tuple
    settings: dict
    axes: tuple
    references: tuple = ()  # (name, command template)
    curves: tuple = ()  # more scalar tags to plot like FID ([report] curves)
    curve_max_step: int = 0  # 0: the whole run
    findings: str = ""  # the researcher's reading of the results ([report] findings), markdown


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    name: str  # its directory under the root
    config_name: str  # the same without the seed: the row of the results table
    choices: tuple  # (axis name, label) per axis
    seed: int
    config: config_lib.RunConfig
    hparams: tuple = ()  # (axis name, the value TensorBoard's HParams dashboard shows) per axis


@dataclasses.dataclass(frozen=True)
class PlannedReference:
    """One seed of an outside implementation: its command writes samples that gan.evaluate
    scores."""
    name: str
    config_name: str
    seed: int
    command: str  # with {seed} and {samples} filled in
    dataset: str
    choices: tuple = ()
    hparams: tuple = ()


def _read_toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            raise StudyError(f"{path}: reading a study file needs Python >= 3.11 (tomllib) or "
                             "`pip install tomli`") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise StudyError(f"--study={path}: no such file") from None
    except OSError as e:
        raise StudyError(f"--study={path}: cannot be read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path}: not valid TOML: {e}") from None


def _label(value):
    """A value as a piece of a directory name."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "-".join(_label(v) for v in value)
    return str(value).replace("/", "-").replace(",", "-").replace("=", "-")


def _as_setting(value):
    return tuple(value) if isinstance(value, list) else value


def _check_names(path, where, values):
    unknown = [name for name in values if name not in config_lib.SETTINGS]
    if unknown:
        raise StudyError(f"{path}: {where}: unknown flag {', '.join(map(repr, unknown))} "
                         "(expected gan.train's flag names, without the dashes)")


# A variant axis's name and a reference's name become part of directory names: letters, digits
# and _ . + - only, starting with a letter or digit, so that no name can climb out of the root.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
# Run directories are named <axis>=<label>,...,seed=<n> and reference=<name>,seed=<n>.
RESERVED_AXES = ("seed", "reference")
MAX_NAME_BYTES = 255  # a directory name's limit on Linux's file systems


def _table(path, raw, key, what):
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise StudyError(f"{path}: '{key}' must be {what}, found {type(value).__name__} "
                         f"{value!r:.60}")
    return value


def _check_name(path, what, name):
    if not NAME.match(name):
        raise StudyError(f"{path}: {what} {name!r}: expected letters, digits and _ . + - "
                         "only, starting with a letter or digit (it names directories)")


def _variant_axis(path, name, spec):
    _check_name(path, "axis", name)
    choices = []
    for label, variant in spec.items():
        where = f"axis {name!r}, variant {label!r}"
        if not variant:
            raise StudyError(f"{path}: {where} sets no flag; expected flag = value lines under "
                             f"[axes.{name}.{label}]")
        _check_names(path, where, variant)
        choices.append((_label(label), {k: _as_setting(v) for k, v in variant.items()}))
    for (a, flags_a), (b, flags_b) in itertools.combinations(choices, 2):
        if flags_a == flags_b:
            raise StudyError(f"{path}: axis {name!r}: variants {a!r} and {b!r} set the same "
                             "flags to the same values, so their runs would be identical")
    return tuple(choices)


def _check_conflicts(path, settings, axes):
    """No flag is set by two axes, or by an axis and [settings]: one would silently win, and
    runs named after one value would train with another."""
    owner = {name: "[settings]" for name in settings}
    for axis in axes:
        for name in sorted({flag for _, values in axis.choices for flag in values}):
            if name in owner:
                raise StudyError(f"{path}: --{name} is set by both {owner[name]} and axis "
                                 f"{axis.name!r}; expected each flag in one place")
            owner[name] = f"axis {axis.name!r}"


def load_study(path):
    """The Study in a TOML file; StudyError names the file and the problem."""
    raw = _read_toml(path)
    known = {"description", "base", "seeds", "settings", "axes", "references", "report"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise StudyError(f"{path}: unknown key {', '.join(map(repr, unknown))}; expected "
                         f"{', '.join(sorted(known))}")
    if not isinstance(raw.get("base"), str):
        raise StudyError(f"{path}: 'base' must name the base flagfile (a path relative to the "
                         "study file)")
    if not isinstance(raw.get("description", ""), str):
        raise StudyError(f"{path}: 'description' must be text")
    base = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), raw["base"]))
    if not os.path.isfile(base):
        raise StudyError(f"{path}: base flagfile {base} not found")
    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            or len(set(seeds)) != len(seeds) or not all(config_lib.SEED.contains(s) for s in seeds)):
        raise StudyError(f"{path}: 'seeds' must be a list of distinct integers in [0, 2^63 - 1], "
                         f"found {seeds!r:.80}")
    settings = _table(path, raw, "settings", "a table of flag = value ([settings])")
    _check_names(path, "[settings]", settings)
    axes = []
    for name, spec in _table(path, raw, "axes", "tables of axes ([axes])").items():
        if name in RESERVED_AXES:
            raise StudyError(f"{path}: axis {name!r}: the name is the runner's own ("
                             + ("the seeds are set by seeds = [...])" if name == "seed" else
                                "references are set by [references.<name>])"))
        if isinstance(spec, list):
            _check_names(path, f"axis {name!r}", [name])
            if not spec:
                raise StudyError(f"{path}: axis {name!r} has no values")
            choices = tuple((_label(v), {name: _as_setting(v)}) for v in spec)
            is_flag = True
        elif isinstance(spec, dict) and spec and all(isinstance(v, dict) for v in spec.values()):
            choices = _variant_axis(path, name, spec)
            is_flag = False
        else:
            raise StudyError(f"{path}: axis {name!r} must be a list of values of the flag "
                             f"--{name}, or tables of named variants ([axes.{name}.<variant>])")
        labels = [label for label, _ in choices]
        if len(set(labels)) != len(labels):
            raise StudyError(f"{path}: axis {name!r} has two choices named alike: {labels}")
        axes.append(Axis(name, choices, is_flag))
    _check_conflicts(path, settings, axes)
    references = []
    for label, spec in _table(path, raw, "references",
                              "tables of references ([references.<name>])").items():
        command = spec.get("command") if isinstance(spec, dict) else None
        if not isinstance(command, str) or "{samples}" not in command:
            raise StudyError(f"{path}: reference {label!r} needs command = \"...\" that writes "
                             "its samples to {samples} (and may use {seed})")
        _check_name(path, "reference", label)
        references.append((_label(label), command))
    report = _table(path, raw, "report", "a table ([report])")
    curves, max_step = report.get("curves", []), report.get("curve_max_step", 0)
    findings = report.get("findings", "")
    if (not isinstance(curves, list) or not all(isinstance(c, str) for c in curves)
            or not isinstance(max_step, int) or max_step < 0 or not isinstance(findings, str)
            or set(report) - {"curves", "curve_max_step", "findings"}):
        raise StudyError(f"{path}: [report] takes curves = [\"train/g_grad_norm\", ...] (scalar "
                         "tags to plot), curve_max_step = N (>= 0; 0 for the whole run) and "
                         "findings = \"\"\"...\"\"\" (markdown for results.md)")
    # Each curve is plotted to <root>/<last part of its tag>.png, beside fid.png and mosaic.png.
    plots = ["fid.png", "mosaic.png"]
    for tag in curves:
        plot = ablation_report.plot_file_name(tag)
        if plot in plots or not NAME.match(plot):
            raise StudyError(f"{path}: [report] curve {tag!r} would be plotted to {plot!r}, "
                             f"which is taken or not a plain file name; expected tags ending in "
                             "distinct names other than fid and mosaic")
        plots.append(plot)
    name = os.path.splitext(os.path.basename(path))[0]
    return Study(path, name, str(raw.get("description", "")).strip(), base, tuple(seeds),
                 {k: _as_setting(v) for k, v in settings.items()}, tuple(axes),
                 tuple(references), tuple(curves), max_step, findings.strip())


def _check_run_name(path, name):
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        raise StudyError(f"{path}: run {name[:60]}...: its directory name has {size} bytes; "
                         f"expected at most {MAX_NAME_BYTES} (shorten the axis names or labels)")


def outside_root(root, runs):
    """(run, where its directory resolves) for the first run whose directory would not lie
    inside `root` once `..` and symbolic links are resolved; None when every one does."""
    real_root = os.path.realpath(root)
    for run in runs:
        real = os.path.realpath(os.path.join(root, run.name))
        if real == real_root or os.path.commonpath([real_root, real]) != real_root:
            return run, real
    return None


def plan(study):
    """Every run of the study, each with its validated RunConfig, in the order they run:
    seed-major, so that a study stopped early has every configuration at its first seed."""
    try:
        base = config_lib.from_flagfile(study.base)
    except flags.Error as e:
        raise StudyError(f"{study.path}: base flagfile {study.base}: "
                         f"{str(e).splitlines()[0]}") from None
    except config_lib.ConfigError as e:
        line = e.lines[0]
        where = "" if line.startswith(study.base) else f"base flagfile {study.base}: "
        raise StudyError(f"{study.path}: {where}{line}") from None
    try:
        base = base.replace(**study.settings)
    except config_lib.ConfigError as e:
        raise StudyError(f"{study.path}: [settings]: {e.lines[0]}") from None
    runs = []
    for seed in study.seeds:
        for combination in itertools.product(*(axis.choices for axis in study.axes)):
            overrides, parts = {}, []
            for axis, (label, values) in zip(study.axes, combination):
                overrides.update(values)
                parts.append(f"{axis.name}={label}")
            config_name = ",".join(parts) or "base"
            try:
                config = base.replace(**overrides, seed=seed).validate()
            except config_lib.ConfigError as e:
                raise StudyError(f"{study.path}: {config_name}: {e.lines[0]}") from None
            name = ",".join(parts + [f"seed={seed}"])
            _check_run_name(study.path, name)
            labels = [label for label, _ in combination]
            runs.append(PlannedRun(
                name, config_name, tuple(zip((a.name for a in study.axes), labels)), seed,
                config, tuple((a.name, a.hparam_value(label))
                              for a, label in zip(study.axes, labels))))
        for label, command in study.references:
            _check_run_name(study.path, f"reference={label},seed={seed}")
            runs.append(PlannedReference(
                f"reference={label},seed={seed}", f"reference={label}", seed,
                command.replace("{seed}", str(seed)), base.data.dataset))
    return runs


# --- running one run --------------------------------------------------------------------------------

# The fields of a run's status record and their types; a record that is not a JSON object, or a
# field of another type, is read as missing (the run is then trained or resumed, as if new).
STATUS_FIELDS = {"status": str, "reason": str, "flags_digest": str, "wall_seconds": (int, float),
                 "attempts": int, "threads": int, "hparams_written": bool, "step": (int, str),
                 "skipped": bool}


def read_status(run_dir):
    path = os.path.join(run_dir, STATUS_FILE)
    try:
        with open(path) as f:
            status = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(status, dict):
        return {}
    return {key: value for key, value in status.items()
            if key in STATUS_FIELDS and isinstance(value, STATUS_FIELDS[key])
            and not (isinstance(value, bool) and STATUS_FIELDS[key] is not bool)}


def _attempts(status):
    return max(0, status.get("attempts", 0))


def _wall_seconds(status):
    value = float(status.get("wall_seconds", 0.0))
    return value if value >= 0 and math.isfinite(value) else 0.0


def write_status(run_dir, status):
    images.write_atomically(os.path.join(run_dir, STATUS_FILE),
                            json.dumps(status, indent=2, sort_keys=True).encode())


def run_digest(run):
    """What identifies a run's settings: a rerun with other settings trains it again."""
    text = (run.command if isinstance(run, PlannedReference)
            else run.config.to_flagfile(identity=True))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_finished(run_dir, run):
    status = read_status(run_dir)
    return status.get("status") in FINAL_STATES and status.get("flags_digest") == run_digest(run)


REFERENCE_SAMPLES = "samples.npy"
REFERENCE_EVAL = "final_eval.json"


def _die_with_parent():
    """In the child, before exec: the kernel sends it SIGTERM when the runner dies, even by
    SIGKILL, so that gan.train checkpoints and stops instead of training on unsupervised (and
    holding the run's lock against the next runner)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned training just runs to its end


def thread_environment(threads):
    """Environment variables that cap one training's TensorFlow (and oneDNN) threads."""
    env = dict(os.environ)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _last_error(log_path):
    """The last line gan.train wrote about its failure."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read()[-20000:].splitlines()
    except OSError:
        return ""
    errors = [line.split("error: ", 1)[1] for line in lines if "gan.train: error: " in line]
    if errors:
        return errors[-1]
    return next((line for line in reversed(lines) if line.strip()), "")


def current_state(run_dir):
    """The run's status; "running" only while a runner holds the run (else the runner that
    wrote it was killed, and the run is interrupted)."""
    state = read_status(run_dir).get("status", "not run")
    if state == "running" and not rundir.LogdirLock(run_dir, RUNNER_LOCK).is_held():
        return "interrupted"
    return state


def checkpoint_step(run_dir):
    latest = rundir.latest_checkpoint(rundir.checkpoint_dir(run_dir))
    return rundir.step_of(latest) if latest else 0


class Runner:
    """Trains the planned runs in `root`, `parallel` at a time."""

    def __init__(self, root, parallel=1, threads=None, python=sys.executable,
                 echo=functools.partial(print, flush=True)):
        self.root = root
        self.parallel = parallel
        cores = os.cpu_count() or 1
        self.threads = threads or max(1, cores // parallel)
        self.python = python
        self.echo = echo
        self.stopping = False
        self._children = set()
        self._lock = threading.Lock()

    def command(self, run):
        run_dir = os.path.join(self.root, run.name)
        return [self.python, "-m", "gan.train", f"--flagfile={os.path.join(run_dir, RUN_FLAGFILE)}",
                f"--logdir={run_dir}"]

    def run_one(self, run):
        """Trains (or resumes) one run unless it is finished or another runner holds it;
        returns its status record."""
        run_dir = os.path.join(self.root, run.name)
        os.makedirs(run_dir, exist_ok=True)
        lock = rundir.LogdirLock(run_dir, RUNNER_LOCK)
        try:
            lock.acquire()
        except rundir.LogdirLocked:
            return {"status": "busy", "reason": "another runner is training it"}
        try:
            if is_finished(run_dir, run):
                return dict(read_status(run_dir), skipped=True)
            if isinstance(run, PlannedReference):
                return self._reference(run, run_dir)
            return self._train(run, run_dir)
        finally:
            lock.release()

    def _structural_conflict(self, run, run_dir):
        """Why the run's directory holds a training this run cannot resume (other architecture,
        sizes, optimizer...), or None. Said before anything in the directory is touched, so that
        a finished run's record stays as it is."""
        try:
            old = rundir.load_config(run_dir)
        except (FileNotFoundError, rundir.RunError):
            return None
        if rundir.latest_checkpoint(rundir.checkpoint_dir(run_dir)) is None:
            return None
        differences = build.structural_differences(old, run.config)
        if not differences:
            return None
        return (f"{run_dir} holds a training with other structural settings "
                f"({'; '.join(differences)[:300]}); the study's settings for this run changed. "
                "Move that directory out of the root (or use another --root) to train it anew")

    def _wait_for_earlier_training(self, run, run_dir):
        """A training started by a runner that was killed outright still holds the run's writer
        lock until the kernel's SIGTERM makes it checkpoint and stop; starting another now would
        be refused. Waits for it, so that this attempt resumes from its last checkpoint."""
        lock = rundir.LogdirLock(run_dir)
        if not lock.is_held():
            return
        self.echo(f"{run.name}: a training started by an earlier runner still writes it; "
                  "waiting for it to stop")
        while lock.is_held() and not self.stopping:
            time.sleep(0.5)

    def _train(self, run, run_dir):
        previous = read_status(run_dir)
        conflict = self._structural_conflict(run, run_dir)
        if conflict:
            return {"status": "conflict", "reason": conflict}
        self._wait_for_earlier_training(run, run_dir)
        images.write_atomically(os.path.join(run_dir, RUN_FLAGFILE),
                                run.config.to_flagfile().encode())
        if not previous.get("hparams_written"):
            ablation_report.write_run_hparams(run_dir, run)
        # The attempt counts from its start, so that one ended by a SIGKILL of the runner counts.
        write_status(run_dir, dict(previous, status="running", hparams_written=True,
                                   flags_digest=run_digest(run),
                                   attempts=_attempts(previous) + 1))
        start = time.time()
        returncode = self._execute(self.command(run), run_dir)
        seconds = time.time() - start
        step = checkpoint_step(run_dir)
        num_steps = run.config.schedule.num_steps
        if returncode is None:
            return {"status": "interrupted", "reason": "the runner was stopped"}
        if returncode == 0 and step >= num_steps:
            state, reason = "done", ""
        elif returncode == 0 or returncode < 0:
            state = "interrupted"
            reason = (f"stopped at step {step}" if returncode == 0
                      else f"killed by {signal.Signals(-returncode).name} at step {step}")
        elif returncode == 3:  # gan.train's exit code for a non-finite loss or gradient
            state, reason = "diverged", _last_error(os.path.join(run_dir, TRAIN_LOG))
        else:
            state = "crashed"
            reason = f"exit code {returncode}: {_last_error(os.path.join(run_dir, TRAIN_LOG))}"
        return self._record(run, run_dir, previous, state, reason, seconds, step=step,
                            hparams_written=True)

    def _record(self, run, run_dir, previous, state, reason, seconds, **extra):
        """Writes and returns the run's status after one attempt; wall time and attempts add up
        over the attempts."""
        status = {"status": state, "reason": reason,
                  "wall_seconds": _wall_seconds(previous) + seconds,
                  "flags_digest": run_digest(run),
                  "attempts": _attempts(previous) + 1, "threads": self.threads, **extra}
        write_status(run_dir, status)
        return status

    def _execute(self, command, run_dir):
        """Runs a command with its output appended to the run's log; returns its exit code
        (None when the runner is stopping)."""
        with open(os.path.join(run_dir, TRAIN_LOG), "a") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: "
                      f"{shlex.join(command)}\n")
            log.flush()
            with self._lock:
                if self.stopping:
                    return None
                child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         env=thread_environment(self.threads),
                                         preexec_fn=_die_with_parent)
                self._children.add(child)
            returncode = child.wait()
            with self._lock:
                self._children.discard(child)
        return returncode

    def _reference(self, run, run_dir):
        """Runs a reference's command, then scores its samples with gan.evaluate --samples."""
        previous = read_status(run_dir)
        write_status(run_dir, dict(previous, status="running", flags_digest=run_digest(run),
                                   attempts=_attempts(previous) + 1))
        samples = os.path.join(run_dir, REFERENCE_SAMPLES)
        start = time.time()
        command = run.command.replace("{samples}", samples).replace("{python}", self.python)
        returncode = self._execute(shlex.split(command), run_dir)
        if returncode == 0:
            returncode = self._execute(
                [self.python, "-m", "gan.evaluate", f"--samples={samples}",
                 f"--dataset={run.dataset}", f"--output={os.path.join(run_dir, REFERENCE_EVAL)}"],
                run_dir)
        if returncode == 0:
            state, reason = "done", ""
        elif returncode is None or returncode < 0:
            state, reason = "interrupted", "stopped"
        else:
            state = "crashed"
            reason = f"exit code {returncode}: {_last_error(os.path.join(run_dir, TRAIN_LOG))}"
        return self._record(run, run_dir, previous, state, reason, time.time() - start, step="")

    def stop(self):
        """Asks every training to checkpoint and stop (they then exit by themselves)."""
        with self._lock:
            self.stopping = True
            for child in self._children:
                child.send_signal(signal.SIGTERM)

    def run_all(self, runs):
        """Runs the study; returns {run name: status}."""
        results = {}
        total = len(runs)
        with futures.ThreadPoolExecutor(self.parallel) as pool:
            pending = {pool.submit(self.run_one, run): run for run in runs}
            for done_count, future in enumerate(futures.as_completed(pending), 1):
                run = pending[future]
                status = future.result()
                results[run.name] = status
                if status.get("skipped"):
                    what = f"{status['status']} already, skipped"
                elif status["status"] == "done":
                    what = f"done in {status['wall_seconds']:.0f} s"
                else:
                    what = f"{status['status']}: {status.get('reason', '')}"
                self.echo(f"[{done_count}/{total}] {run.name}: {what}")
        return results


# --- launchers ---------------------------------------------------------------------------------------

def run_commands(study_path, root, runs, python="python", extra_flags=()):
    """One shell command per run, each independent and resumable."""
    return [shlex.join([python, "-m", "gan.ablate", f"--study={study_path}", f"--root={root}",
                        f"--only={run.name}", *extra_flags]) for run in runs]


def slurm_script(study, root, runs, cpus_per_task=2, extra_flags=()):
    """A Slurm job-array script with one task per run; its last task's output names the command
    that collects the results."""
    commands = run_commands(os.path.abspath(study.path), os.path.abspath(root), runs,
                            extra_flags=extra_flags)
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name=gan-{study.name}",
        f"#SBATCH --array=0-{len(runs) - 1}",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        f"#SBATCH --output={os.path.abspath(root)}/slurm-%A_%a.out",
        "# One task per run of the study; every run is independent and resumes if resubmitted.",
        "# When all are done: python -m gan.ablate --study=... --root=... --report_only",
        "set -euo pipefail",
        f"cd {shlex.quote(os.getcwd())}",
        "commands=(",
        *[f"  {shlex.quote(command)}" for command in commands],
        ")",
        'eval "${commands[$SLURM_ARRAY_TASK_ID]}"',
    ]
    return "\n".join(lines) + "\n"


def with_placement(runs, **placement):
    """The runs with placement settings (strategy, cpu_replicas, tpu) replaced: they are not part
    of a run's identity, so a finished run stays finished."""
    placement = {name: value for name, value in placement.items() if value is not None}
    if not placement:
        return runs
    return [dataclasses.replace(run, config=run.config.replace(**placement))
            if isinstance(run, PlannedRun) else run for run in runs]


# --- the command line ----------------------------------------------------------------------------

def define_flags():
    flags.DEFINE_string("study", None, "Study file (TOML), e.g. "
                        "experiments/ablations/seed_quirks.toml.")
    flags.DEFINE_string("root", None, "Directory for the study's runs and results; default "
                        "runs/<study name>.")
    flags.DEFINE_integer("parallel", 1, "Runs trained at the same time, each with its "
                         "TensorFlow threads capped to cores/parallel.", lower_bound=1)
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
    flags.mark_flag_as_required("study")


def placement_flags():
    """The placement flags given to this runner, to pass on to the commands it prints."""
    return [f"--{name}={FLAGS[name].value}" for name in ("strategy", "cpu_replicas", "tpu")
            if FLAGS[name].value is not None]


def main(argv):
    del argv
    try:
        if FLAGS.strategy == "multi_worker":
            raise StudyError("--strategy=multi_worker: a multi-worker run needs one process per "
                             "worker, which this runner does not start; train such a run with "
                             "gan.train on each worker (see BUILD.md)")
        study = load_study(FLAGS.study)
        runs = with_placement(plan(study), strategy=FLAGS.strategy,
                              cpu_replicas=FLAGS.cpu_replicas, tpu=FLAGS.tpu)
    except config_lib.ConfigError as e:
        cli.fail(PROGRAM, e.lines)
    except StudyError as e:
        cli.fail(PROGRAM, str(e).splitlines()[:1])
    root = FLAGS.root or os.path.join("runs", study.name)
    if os.path.isfile(os.path.join(root, rundir.CONFIG_FILE)):
        cli.fail(PROGRAM, [f"--root={root} holds a gan.train run ({rundir.CONFIG_FILE}); expected "
                           "a study's root, a directory of runs (an empty or new one to start)"])
    escaped = outside_root(root, runs)
    if escaped:
        cli.fail(PROGRAM, [f"--root={root}: run {escaped[0].name} would be written to "
                           f"{escaped[1]}, outside the root (a symbolic link?); expected every "
                           "run directory inside it"])
    error = cli.check_output_dir(root, "root")
    if error:
        cli.fail(PROGRAM, [error])
    if FLAGS.only:
        selected = [run for run in runs if run.name == FLAGS.only]
        if not selected:
            cli.fail(PROGRAM, [f"--only={FLAGS.only}: not a run of {study.path}; its runs are "
                               f"{', '.join(run.name for run in runs[:4])}"
                               + (", ..." if len(runs) > 4 else "")])
        runs = selected
    if FLAGS.print_commands:
        print("\n".join(run_commands(FLAGS.study, root, runs, extra_flags=placement_flags())))
        return
    if FLAGS.launcher == "slurm":
        path = os.path.join(root, "slurm_array.sh")
        images.write_atomically(path, slurm_script(study, root, runs,
                                                   extra_flags=placement_flags()).encode())
        os.chmod(path, 0o755)
        print(f"wrote {path}: a job array of {len(runs)} runs; submit it with `sbatch {path}`, "
              f"then collect the results with --report_only")
        return
    runner = Runner(root, FLAGS.parallel, FLAGS.threads_per_run)
    if not FLAGS.report_only:
        def on_signal(signum, frame):
            print(f"{signal.Signals(signum).name}: asking the trainings to checkpoint and stop",
                  flush=True)
            runner.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)
        print(f"{study.name}: {len(runs)} runs in {root}, {runner.parallel} at a time with "
              f"{runner.threads} TensorFlow thread(s) each", flush=True)
        runner.run_all(runs)
        if runner.stopping:
            print("stopped; rerun the same command to resume the study", flush=True)
            sys.exit(1)
    if FLAGS.only:
        return
    for line in ablation_report.write_report(study, root, runs, " ".join(
            shlex.quote(a) for a in ["python", "-m", PROGRAM] + sys.argv[1:])):
        print(line, flush=True)


if __name__ == "__main__":
    # Run as `python -m`, this file is `__main__`, a second copy of gan.ablate whose classes
    # gan.ablation_report would not recognise; hand over to the one copy.
    from gan import ablate
    ablate.define_flags()
    cli.run(ablate.main, PROGRAM)
