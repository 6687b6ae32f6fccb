"""Training a study's runs: each as a `python -m gan.train` process in its own directory, under a
lock so that two runners never train the same run, `parallel` at a time."""

import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

from gan import build, files, machine, rundir
from gan.study import hparams, records
from gan.study.warm import die_with_parent
from gan.study.plan import PlannedReference, run_digest
from gan.study.status import (FINAL_STATES, REFERENCE_EVAL, REFERENCE_SAMPLES, RUN_FLAGFILE,
                              RUNNER_LOCK,
                              TRAIN_LOG, _attempts, _last_error, _wall_seconds, checkpoint_step,
                              is_finished, read_status, write_status)


# A study's training peaks near 1.3 GiB of resident memory (mnist_mlp.flags and dcgan.flags, with
# evaluation's 10,000 x 10,000 distances); 2 GiB a run leaves the machine room beside them.
MEMORY_PER_RUN = 2 * 2 ** 30


def usable_cores():
    """The cores this process may run on (its affinity mask, which a scheduler may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory():
    """Bytes the machine can give without swapping (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def auto_parallel(pending, cores, memory):
    """How many of `pending` runs to train at a time: one per core, each on one thread. A GAN
    step of the sizes studied here does not keep two cores busy (its matmuls are too small to
    split well, and every op waits for the one before), so N single-thread runs side by side
    finish N runs sooner than N threads on one run each in turn (experiments/parallel_speedup.py).
    Fewer when fewer runs are left or memory would not hold them."""
    by_memory = cores if memory is None else max(1, memory // MEMORY_PER_RUN)
    return max(1, min(cores, pending, by_memory))


def thread_environment(threads):
    """Environment variables that cap one training's TensorFlow (and oneDNN) threads."""
    env = dict(os.environ)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Runner:
    """Trains the planned runs in `root`, `parallel` at a time."""

    def __init__(self, root, parallel=None, threads=None, python=sys.executable,
                 echo=functools.partial(print, flush=True), study=None, warm=True):
        self.root = root
        # With the study, each run that finishes leaves its record, and a run with a record of
        # its settings is finished (on any machine).
        self.study = study
        self.records_dir = records.directory(study, root) if study else None
        # parallel=None: chosen for the machine by `plan`, each time it is given runs.
        self.auto = parallel is None
        self._threads = threads
        self.configure(parallel or 1)
        self.python = python
        self.echo = echo
        self.machine = machine.describe()
        self.stopping = False
        self._children = set()
        # Trainings start as children of a warm server per thread (gan.study.warm), which has
        # TensorFlow imported already: the same training, without its 5 s of start-up.
        self.warm = warm
        self._local = threading.local()
        self._servers = []
        self._warm_pids = set()
        self._lock = threading.Lock()

    def configure(self, parallel):
        """`parallel` runs at a time, each with cores/parallel threads unless threads were given."""
        self.parallel = parallel
        self.threads = self._threads or max(1, usable_cores() // parallel)

    def _final_record(self, run):
        """The run's record when it says the run finished (on any machine), else None."""
        record = records.read(self.records_dir, run) if self.records_dir else None
        return record if record and record.get("status") in FINAL_STATES else None

    def unfinished(self, runs):
        """The runs without a final record or a finished run directory: what run_all trains."""
        return [run for run in runs if not self._final_record(run)
                and not is_finished(os.path.join(self.root, run.name), run)]

    def plan(self, runs):
        """With parallel=None, chooses it for these runs and this machine (`auto_parallel`)."""
        if self.auto:
            self.configure(auto_parallel(len(self.unfinished(runs)), usable_cores(),
                                         available_memory()))

    def command(self, run):
        run_dir = os.path.join(self.root, run.name)
        return [self.python, "-m", "gan.train", f"--flagfile={os.path.join(run_dir, RUN_FLAGFILE)}",
                f"--logdir={run_dir}"]

    def run_one(self, run):
        """Trains (or resumes) one run unless it is finished or another runner holds it;
        returns its status record."""
        run_dir = os.path.join(self.root, run.name)
        record = self._final_record(run)
        if record:
            return {"status": record["status"], "reason": record.get("reason", ""),
                    "skipped": True, "recorded": True}
        os.makedirs(run_dir, exist_ok=True)
        lock = rundir.LogdirLock(run_dir, RUNNER_LOCK)
        try:
            lock.acquire()
        except rundir.LogdirLocked:
            return {"status": "busy", "reason": "another runner is training it"}
        try:
            if is_finished(run_dir, run):
                status = dict(read_status(run_dir), skipped=True)
            elif isinstance(run, PlannedReference):
                status = self._reference(run, run_dir)
            else:
                status = self._train(run, run_dir)
            if self.records_dir and status["status"] in FINAL_STATES:
                _, problem = records.capture(self.study, run, self.root, self.records_dir)
                if problem:
                    self.echo(problem)
            return status
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
        files.write_atomically(os.path.join(run_dir, RUN_FLAGFILE),
                                run.config.to_flagfile().encode())
        if not previous.get("hparams_written"):
            hparams.write_run_hparams(run_dir, run)
        # The attempt counts from its start, so that one ended by a SIGKILL of the runner counts.
        write_status(run_dir, dict(previous, status="running", hparams_written=True,
                                   flags_digest=run_digest(run),
                                   attempts=_attempts(previous) + 1))
        start = time.time()
        returncode = self._execute(self.command(run), run_dir, warm=True)
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
                  "attempts": _attempts(previous) + 1, "threads": self.threads,
                  "machine": self.machine, **extra}
        write_status(run_dir, status)
        return status

    def _execute(self, command, run_dir, warm=False):
        """Runs a command with its output appended to the run's log; returns its exit code
        (None when the runner is stopping). With `warm`, the command is gan.train's and runs as
        a child of this thread's warm server (`gan.study.warm`) when there is one."""
        log_path = os.path.join(run_dir, TRAIN_LOG)
        with open(log_path, "a") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: "
                      f"{shlex.join(command)}\n")
            log.flush()
            server = self._warm_server() if warm else None
            if server is not None:
                return self._execute_warm(server, command[3:], log_path)
            with self._lock:
                if self.stopping:
                    return None
                child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         env=thread_environment(self.threads),
                                         preexec_fn=die_with_parent)
                self._children.add(child)
            returncode = child.wait()
            with self._lock:
                self._children.discard(child)
        return returncode

    def _warm_server(self):
        """This thread's warm server (started on first use), or None where there is none: no
        fork (not Linux), or it failed to start."""
        if not self.warm or not hasattr(os, "fork"):
            return None
        server = getattr(self._local, "server", None)
        if server is None or server.poll() is not None:
            server = subprocess.Popen([self.python, "-m", "gan.study.warm"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True,
                                      env=thread_environment(self.threads),
                                      preexec_fn=die_with_parent)
            if '"ready"' not in server.stdout.readline():
                server.kill()
                self.warm = False  # fall back to a process per training
                return None
            self._local.server = server
            with self._lock:
                self._servers.append(server)
        return server

    def _execute_warm(self, server, argv, log_path):
        with self._lock:
            if self.stopping:
                return None
            server.stdin.write(json.dumps({"argv": argv, "log": log_path}) + "\n")
            server.stdin.flush()
            answer = server.stdout.readline()
            pid = json.loads(answer)["pid"] if answer else None
            if pid is not None:
                self._warm_pids.add(pid)
        if pid is None:
            return -signal.SIGKILL  # the server died: the training with it
        answer = server.stdout.readline()
        with self._lock:
            self._warm_pids.discard(pid)
        return json.loads(answer)["returncode"] if answer else -signal.SIGKILL

    def close(self):
        """Ends the warm servers (each exits once its input closes)."""
        with self._lock:
            servers, self._servers = self._servers, []
        for server in servers:
            server.stdin.close()
            server.wait()

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
            for pid in self._warm_pids:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

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
                if status.get("recorded"):
                    what = f"{status['status']} already (its record), skipped"
                elif status.get("skipped"):
                    what = f"{status['status']} already, skipped"
                elif status["status"] == "done":
                    what = f"done in {status['wall_seconds']:.0f} s"
                else:
                    what = f"{status['status']}: {status.get('reason', '')}"
                self.echo(f"[{done_count}/{total}] {run.name}: {what}")
        return results
