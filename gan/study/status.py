"""A study run's record in its directory: its status file, what state it is in, how far it got."""

import json
import math
import os

from gan import files, rundir
from gan.study.plan import run_digest


STATUS_FILE = "ablate_status.json"


RUN_FLAGFILE = "run.flags"


TRAIN_LOG = "train.log"


RUNNER_LOCK = ".lock"


# Final states: a rerun of the study does not train these again (unless the run's settings
# changed). "interrupted" and "crashed" runs are retried, resuming from their checkpoints.
FINAL_STATES = ("done", "diverged")


# The fields of a run's status record and their types; a record that is not a JSON object, or a
# field of another type, is read as missing (the run is then trained or resumed, as if new).
STATUS_FIELDS = {"status": str, "reason": str, "flags_digest": str, "wall_seconds": (int, float),
                 "attempts": int, "threads": int, "hparams_written": bool, "step": (int, str),
                 "skipped": bool, "machine": str}
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
    files.write_atomically(os.path.join(run_dir, STATUS_FILE),
                            json.dumps(status, indent=2, sort_keys=True).encode())


def is_finished(run_dir, run):
    status = read_status(run_dir)
    return status.get("status") in FINAL_STATES and status.get("flags_digest") == run_digest(run)


REFERENCE_SAMPLES = "samples.npy"


REFERENCE_EVAL = "final_eval.json"


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
