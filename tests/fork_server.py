"""The suite's warm start for the entry points: `helpers.run_module` asks this process, which has
imported gan (and with it TensorFlow, about 3 s of every short subprocess) once, to fork a child
for each `python -m gan.<program> args...`. The child is that command in all but its start: its
own process, working directory, environment, TensorFlow runtime (this process only imports, it
never starts one), console filter, output and exit code. gan.study.warm does the same for a
study's trainings; tests/test_warm.py holds a forked training to gan.train bit for bit, and
tests/test_console.py starts real processes, since a fork's import-time lines were this one's.

The protocol, one JSON object per line: {"module", "argv", "cwd", "env", "stdout", "stderr"} in
(the last two are files for the child's output); {"pid": n} once the child runs, then
{"returncode": n} when it ended (negative: the signal that ended it).
"""

import json
import os
import runpy
import signal
import sys

# `python -m` from the repository's root puts the root first on the path, not tests/.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from gan import _console  # noqa: E402  (gan's start-up imports TensorFlow, without Keras)
from gan.study import warm  # noqa: E402


def _child(request):
    """In the forked child: becomes `python -m <module> <argv>` and exits as that would, through
    Python's own exit (a traceback and code 1 for a crash)."""
    warm.die_with_parent()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _console.LEVEL_VARIABLE not in os.environ:  # what gan's start-up does for a user
        _console.install()
        _console.quiet_python_logging()
    sys.argv = [request["module"]] + list(request["argv"])
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    sys.exit(0)


def main():
    warm.die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        print(json.dumps({"returncode": warm.wait(pid)}), flush=True)


if __name__ == "__main__":
    main()
