"""A run directory on disk: its config.json, checkpoints and best-FID checkpoint, and restoring a
training state from them.

`gan.train` writes the run's settings to `<logdir>/config.json`; `gan.evaluate`, `gan.sample` and
`gan.export` read them back to rebuild the same networks before restoring a checkpoint, so they need
nothing but the logdir.
"""

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import socket
import time

import tensorflow as tf

from gan import build, files
from gan import config as config_lib
from gan.errors import CheckpointError, LogdirLocked, RunError, StopTraining


CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"
BEST_CHECKPOINT_SUBDIR = "best_checkpoint"


def checkpoint_dir(logdir):
    return os.path.join(logdir, CHECKPOINT_SUBDIR)


def load_run(logdir, checkpoint=None):
    """(config, state, checkpoint path) of a finished or running training run, restored."""
    config = load_config(logdir)
    state = build.make_state(config)
    path = restore(state, logdir, checkpoint)
    if path is None:
        raise FileNotFoundError(f"{checkpoint_dir(logdir)} holds no checkpoint yet")
    return config, state, path


def remove_partial_checkpoint(folder, step):
    """Removes what a failed save of ckpt-<step> left in `folder`: TensorFlow's temporary
    ckpt-<step>_temp* shards (a complete checkpoint never has that name)."""
    for path in glob.glob(os.path.join(folder, f"ckpt-{step}_temp*")):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


def save_config(logdir, config):
    os.makedirs(logdir, exist_ok=True)
    files.write_atomically(os.path.join(logdir, CONFIG_FILE), json.dumps(
        config_lib.to_json_value(config.to_flat()), indent=2, sort_keys=True).encode())


def load_config(logdir):
    """The RunConfig saved in logdir. Settings a config.json lacks (written by an older version)
    take their defaults. Raises FileNotFoundError, or RunError naming the file."""
    path = os.path.join(logdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --logdir must be a directory written by "
                                "`python -m gan.train`")
    try:
        with open(path) as f:
            flat = json.load(f)
        if not isinstance(flat, dict):
            raise ValueError(f"expected a JSON object, found {type(flat).__name__}")
        return config_lib.RunConfig.from_flat(flat)
    except (ValueError, TypeError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        raise RunError(f"{path} is not a valid run config: {e}") from None


BEST_FILE = "best.json"


def read_best(logdir):
    """{'step', 'fid', 'checkpoint'} of the best-FID checkpoint so far, or None."""
    path = os.path.join(logdir, BEST_CHECKPOINT_SUBDIR, BEST_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_best(logdir, record):
    files.write_atomically(os.path.join(logdir, BEST_CHECKPOINT_SUBDIR, BEST_FILE),
                            json.dumps(record, indent=2).encode())


STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of a folder's checkpoints


def checkpoints_in(folder):
    """The checkpoint prefixes in `folder` by their own files (each ckpt-N with its .index),
    oldest step first."""
    return sorted((index[:-len(".index")]
                   for index in glob.glob(os.path.join(folder, "ckpt-*.index"))), key=step_of)


def latest_checkpoint(folder):
    """The newest checkpoint in `folder` by its own files, so that a damaged state file cannot
    hide checkpoints that load; None when there is none."""
    found = checkpoints_in(folder)
    return found[-1] if found else None


def _state_file_lists(folder):
    """The checkpoint paths the folder's state file lists, newest last; None when it is missing,
    unreadable or does not parse."""
    from google.protobuf import text_format
    from tensorflow.python.training import checkpoint_state_pb2
    try:
        with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as f:
            state = text_format.Parse(f.read(), checkpoint_state_pb2.CheckpointState())
    except (OSError, UnicodeDecodeError, text_format.ParseError):
        return None
    if not state.model_checkpoint_path:
        return None
    return [os.path.join(folder, os.path.basename(p))
            for p in state.all_model_checkpoint_paths or [state.model_checkpoint_path]]


def repair_checkpoint_state(logdir):
    """Rewrites the checkpoints' state file from the checkpoint files when it does not parse or
    does not name the newest checkpoint there (overwritten, truncated, deleted), so that a
    training resumes from the checkpoints that exist and keeps rotating them. Returns the
    line to print, or None when there was nothing to repair."""
    folder = checkpoint_dir(logdir)
    found = checkpoints_in(folder)
    listed = _state_file_lists(folder)
    if not found or (listed and listed[-1] == found[-1]):
        return None
    # The state file's own format (what tf.train.CheckpointManager writes), names relative to
    # the folder; with the files' times the manager keeps rotating them by --keep_checkpoints.
    from google.protobuf import text_format
    from tensorflow.python.training import checkpoint_state_pb2
    stamps = [os.path.getmtime(path + ".index") for path in found]
    state = checkpoint_state_pb2.CheckpointState(
        model_checkpoint_path=os.path.basename(found[-1]),
        all_model_checkpoint_paths=[os.path.basename(p) for p in found],
        all_model_checkpoint_timestamps=stamps, last_preserved_timestamp=min(stamps) - 1)
    files.write_atomically(os.path.join(folder, STATE_FILE),
                            text_format.MessageToString(state).encode())
    names = ", ".join(os.path.basename(p) for p in found)
    return (f"{os.path.join(folder, STATE_FILE)} did not list the checkpoints there; rewrote it "
            f"from the checkpoint files ({names})")


def resolve_checkpoint(logdir, checkpoint=None):
    """A checkpoint path prefix: `checkpoint` itself, 'best' for the best-FID one, or (None) the
    latest rolling one; None when the logdir has none."""
    if checkpoint == "best":
        path = latest_checkpoint(os.path.join(logdir, BEST_CHECKPOINT_SUBDIR))
        if path is None:
            raise FileNotFoundError(f"{logdir} has no best checkpoint (train with --eval_every > 0)")
        return path
    if checkpoint:
        if not tf.io.gfile.exists(checkpoint + ".index"):
            raise FileNotFoundError(f"checkpoint {checkpoint} not found (no {checkpoint}.index)")
        return checkpoint
    return latest_checkpoint(checkpoint_dir(logdir))


def step_of(path):
    match = re.search(r"ckpt-(\d+)$", path)
    return int(match.group(1)) if match else -1


def checkpoint_paths(logdir, include_best=True):
    """Every checkpoint prefix in the run (rolling, and best-FID), newest step first."""
    folders = [checkpoint_dir(logdir)]
    if include_best:
        folders.append(os.path.join(logdir, BEST_CHECKPOINT_SUBDIR))
    paths = [path for folder in folders for path in checkpoints_in(folder)]
    return sorted(paths, key=step_of, reverse=True)


def checkpoint_problem(path):
    """Why the checkpoint at `path` cannot be read back in full, or None when every tensor in it
    reads (a truncated or corrupted file fails here, not halfway through a restore)."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError, OSError) as e:
        message = str(e).strip().splitlines()
        return message[0] if message else type(e).__name__
    return None


def _restore_into(state, path):
    try:
        tf.train.Checkpoint(state=state).restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit this run's networks and "
                              f"optimizers ({str(e).splitlines()[0][:300]})") from None


def restore(state, logdir, checkpoint=None, fall_back=False):
    """Restores state from `checkpoint` (see resolve_checkpoint) or the latest in logdir; returns
    the path restored, or None when there is none.

    A damaged checkpoint raises CheckpointError naming it and the checkpoints that load, or, with
    `fall_back` (resuming a training), the newest rolling checkpoint that loads is restored
    instead, and a line says so.
    """
    path = resolve_checkpoint(logdir, checkpoint)
    if path is None:
        return None
    problem = checkpoint_problem(path)
    if problem is None:
        _restore_into(state, path)
        return path
    if fall_back and checkpoint is None:
        for older in checkpoint_paths(logdir, include_best=False):
            if step_of(older) < step_of(path) and checkpoint_problem(older) is None:
                print(f"checkpoint {path} cannot be read ({problem}); resuming from the previous "
                      f"one, {older}", flush=True)
                _restore_into(state, older)
                return older
    loadable = [p for p in checkpoint_paths(logdir) if p != path and checkpoint_problem(p) is None]
    advice = (f"checkpoints that load: {', '.join(loadable)}; pass --checkpoint=<one of them>"
              if loadable else "no other checkpoint of this run loads")
    raise CheckpointError(f"checkpoint {path} cannot be read ({problem}); {advice}")


# --- one writer per logdir -------------------------------------------------------------------------

LOCK_FILE = ".writer.lock"


class LogdirLock:
    """One writer per run directory: an exclusive flock on <logdir>/.writer.lock, held while a
    training writes there. The file names the holder (pid, host, start time) for the message a
    second writer gets. The kernel drops a flock when its process dies, SIGKILL included, so a
    lock left by a killed run is simply free; its file still names the dead holder, which
    `acquire` returns so the takeover can be said. Readers take no lock.
    """

    def __init__(self, logdir, lock_file=LOCK_FILE):
        self.logdir = logdir
        self.path = os.path.join(logdir, lock_file)
        self._fd = None

    @staticmethod
    def _holder(fd):
        try:
            text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            return json.loads(text) if text else None
        except (OSError, ValueError):
            return {"pid": "?", "host": "?", "since": "?"}

    def acquire(self):
        """Takes the lock or raises LogdirLocked; returns the record of a previous holder that
        died without releasing it, or None."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._holder(fd) or {}
            os.close(fd)
            raise LogdirLocked(
                f"{self.logdir} is being written by another training (pid {holder.get('pid', '?')}"
                f" on host {holder.get('host', '?')}, since {holder.get('since', '?')}); wait for "
                "it to finish or stop it, or use another --logdir") from None
        stale = self._holder(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return stale

    def is_held(self):
        """Whether a live process holds the lock now. A probe: unlike acquire, it leaves the
        file's record of the holder untouched."""
        if not os.path.exists(self.path):
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's shared lock
        return False

    def release(self):
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # empty: the last holder let go properly
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


# --- a run directory before training -------------------------------------------------------------

def make_writable_logdir(logdir):
    """Creates the logdir if needed and checks that files can be written in it."""
    error = files.check_output_dir(logdir, "logdir")
    if error:
        raise StopTraining(error, 2)


def prepare_logdir(logdir, config, restart=False):
    """Checks that a checkpoint in the logdir fits this run; archives the old run first when
    `restart`. Raises StopTraining otherwise. Returns the config of the run being resumed, or
    None."""
    old = None
    has_checkpoint = latest_checkpoint(checkpoint_dir(logdir)) is not None
    if has_checkpoint and restart:
        archive = os.path.join(logdir, time.strftime("archived-%Y%m%d-%H%M%S", time.gmtime()))
        os.makedirs(archive)
        for name in os.listdir(logdir):
            if not name.startswith("archived-") and name != LOCK_FILE:
                os.rename(os.path.join(logdir, name), os.path.join(archive, name))
        print(f"--restart: moved the previous run to {archive}; starting from step 0",
              flush=True)
    elif has_checkpoint:
        try:
            old = load_config(logdir)
        except (FileNotFoundError, ValueError) as e:
            raise StopTraining(f"{logdir} holds checkpoints but no readable config.json ({e}); "
                               "pass --restart to start over (the old run is kept)", 2) from None
        differences = build.structural_differences(old, config)
        if differences:
            raise StopTraining(
                f"{logdir} holds a checkpoint of a different model, so it cannot be resumed:\n  "
                + "\n  ".join(differences)
                + "\nUse another --logdir, or pass --restart to start over there (the old run is "
                "moved to an archived-* subfolder, nothing is deleted).", 2)
    save_config(logdir, config)
    return old
