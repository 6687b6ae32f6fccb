"""A warm start for a study's trainings: `python -m gan.study.warm` imports gan.train (and with it
TensorFlow, about 5 s of a short run) once, then forks a fresh process for each training it is
asked for. Each child is `python -m gan.train --flagfile=... --logdir=...` in all but its start:
its own process, flags, TensorFlow runtime (the parent never starts one: it only imports),
output (its train.log), exit code and signals, so a crash is still that run's alone.

The protocol, one JSON object per line: the runner writes {"argv": [...], "log": path}; the
server answers {"pid": n} once the child runs and {"returncode": n} when it ended (negative: the
signal that ended it, as subprocess says). A child gets SIGTERM when the server dies, and the
server when its runner dies, so that a killed runner's trainings checkpoint and stop.
"""

import ctypes
import json
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In a child process: the kernel sends it SIGTERM when its parent dies, even by SIGKILL, so
    that a training checkpoints and stops instead of training on unsupervised (and holding its
    run's lock against the next runner)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned training just runs to its end


def _child(request):
    """In the forked child: becomes the training, then exits with its code."""
    die_with_parent()
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from gan import cli, train
        sys.argv = ["gan.train"] + list(request["argv"])
        cli.run(train.main, train.PROGRAM, after_parsing=train.enable_compile_cache)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # anything else is the training's crash, reported by its code
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def wait(pid):
    """A child's return code once it has ended (negative: the signal that ended it)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def serve(requests=sys.stdin, answers=sys.stdout):
    die_with_parent()
    from gan import train
    train.define_flags()
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        answers.write(json.dumps({"returncode": wait(pid)}) + "\n")
        answers.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner stops the trainings, not this
    serve()
