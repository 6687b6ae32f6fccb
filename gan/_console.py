"""The console of gan's programs: the project's own lines, without TensorFlow's start-up chatter.

TensorFlow writes INFO lines from C++ (the oneDNN and CUDA notices, the XLA service lines) and
from Python (absl INFO after each checkpoint), and a few ERROR lines that are no fault on a
machine without a GPU (the CUDA plugin's failed cuInit) or with a warm XLA cache (its loader
trying the text format first; tuning features it reads as missing CPU features). Some of them are
written before absl's logging is initialised and ignore TF_CPP_MIN_LOG_LEVEL. So in a gan program
(`python -m gan.*`, a script in `experiments/`) the process's stderr, file descriptor 2, which
TensorFlow's C++ writes to directly, is a pipe into a small filter process forked before
TensorFlow is imported. The filter drops those lines and passes every other one: the project's
own, Python's tracebacks and warnings, and TensorFlow's real warnings and errors.

The filter is a process rather than a thread so that a crash of the program (a segfault, a
fatal check in C++) still reaches the console: the filter reads until the pipe closes, whatever
ends the program.

Setting TF_CPP_MIN_LOG_LEVEL yourself turns the filter off and leaves TensorFlow's logging as it
is: `TF_CPP_MIN_LOG_LEVEL=0 python -m gan.train ...` shows everything TensorFlow says.

This module imports nothing from TensorFlow: it runs before TensorFlow is imported.
"""

import atexit
import os
import re
import select
import signal
import sys
import time

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"

# absl's line format, which TensorFlow's C++ and Python logging share:
# "I1201 21:47:41.233078 139935495654272 functional_saver.py:440] message" (C++ lines written
# before absl's initialisation carry "I0000 00:00:<seconds since the epoch>").
_LOG_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ ([\w.+-]+):\d+\] (.*)$")
_DROPPED_LINES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
)
# The second line of cpu_feature_guard's INFO message.
_DROPPED_PREFIXES = (b"To enable the following instructions: ",)
# (source file, message start) of warnings and errors that report no fault.
_BENIGN = (
    ("text_format.cc", b"Error parsing text-format tensorflow.XlaSerializedCacheEntry"),
    ("cpu_aot_loader.cc", b"Loading XLA:CPU AOT result. Target machine feature +prefer-no-"),
)
_NO_GPU_BENIGN = (("cuda_platform.cc", b"failed call to cuInit"),)
_FLUSH_PARTIAL_AFTER_S = 0.05
_DRAIN_WAIT_S = 2.0


def _has_nvidia_device():
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")


def keeps(line, no_gpu=True):
    """Whether the filter passes `line` (bytes, without its newline)."""
    if line in _DROPPED_LINES or line.startswith(_DROPPED_PREFIXES):
        return False
    match = _LOG_LINE.match(line)
    if not match:
        return True
    level, source, message = match.groups()
    if level == b"I":
        return False
    benign = _BENIGN + (_NO_GPU_BENIGN if no_gpu else ())
    source = source.decode("ascii", "replace")
    return not any(source == name and message.startswith(start) for name, start in benign)


def _filter(read_fd, write_fd, no_gpu):
    """The filter process's loop: lines from the pipe to the real stderr until the pipe closes.
    A last line without its newline is passed after a short wait rather than held back."""
    pending = b""
    while True:
        ready, _, _ = select.select([read_fd], [], [], _FLUSH_PARTIAL_AFTER_S if pending else None)
        if not ready:
            os.write(write_fd, pending)
            pending = b""
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if keeps(line, no_gpu))
        while kept:
            kept = kept[os.write(write_fd, kept):]
    if pending and keeps(pending, no_gpu):
        os.write(write_fd, pending)


def wanted(orig_argv=None, argv0=None, environ=None):
    """Whether this process is a gan program that should filter its console: `python -m gan.*`
    or a script in a folder named experiments, with TF_CPP_MIN_LOG_LEVEL left to us."""
    environ = os.environ if environ is None else environ
    if LEVEL_VARIABLE in environ or not hasattr(os, "fork"):
        return False
    orig_argv = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    argv0 = (sys.argv[0] if sys.argv else "") if argv0 is None else argv0
    for i, arg in enumerate(orig_argv[:-1]):
        if arg == "-m":
            return orig_argv[i + 1].startswith("gan.")
    return (argv0.endswith(".py")
            and os.path.basename(os.path.dirname(os.path.abspath(argv0))) == "experiments")


def install():
    """Routes file descriptor 2 through the filter process. Idempotent; a no-op where fd 2 is
    not open."""
    if getattr(install, "done", False):
        return
    install.done = True
    try:
        os.fstat(2)
    except OSError:
        return
    no_gpu = not _has_nvidia_device()
    read_fd, write_fd = os.pipe()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _run_filter(read_fd, write_fd, no_gpu)
    real_stderr = os.dup(2)
    os.set_inheritable(real_stderr, False)
    os.close(read_fd)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    atexit.register(_drain, pid, real_stderr)


def _run_filter(read_fd, write_fd, no_gpu):
    """The forked filter process: reads the program's stderr until the pipe closes."""
    code = 0
    try:
        # Ctrl-C and a group's SIGTERM are for the program: the filter ends when its pipe
        # closes, after passing on what the program wrote last.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_IGN)
        os.close(write_fd)
        for fd in (0, 1):
            os.close(fd)
        _filter(read_fd, 2, no_gpu)
    except BaseException:  # noqa: B902 -- the filter must never outlive a broken stderr
        code = 1
    os._exit(code)


def _drain(pid, real_stderr):
    """At a normal exit the program's last lines reach the console before the shell's prompt:
    fd 2 goes back to the real stderr, which closes the pipe, and the filter gets a moment to
    pass on what is left."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(real_stderr, 2)
    deadline = time.monotonic() + _DRAIN_WAIT_S
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.005)


def quiet_python_logging():
    """TensorFlow's Python INFO lines (absl's "Sharding callback duration" after every
    checkpoint) stay hidden; its warnings still show."""
    import logging
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
