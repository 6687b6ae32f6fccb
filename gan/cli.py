"""What every `python -m gan.*` entry point shares: a user's mistake is one line on stderr and exit
code 2, never a traceback.

    cli.run(main, "gan.sample")      # instead of app.run(main)

Inside `main`, `cli.fail(program, lines)` reports invalid values; the exceptions that name a user's
mistake (a missing run, a damaged checkpoint, bad data, an unwritable output) are turned into that
line by `run` itself.
"""

import os
import sys

from absl import app, flags

USAGE_EXIT_CODE = 2


def fail(program, lines, exit_code=USAGE_EXIT_CODE):
    for line in lines:
        print(f"{program}: error: {line}", file=sys.stderr)
    sys.exit(exit_code)


def _parser(program, after_parsing=None):
    def parse(argv):
        try:
            remaining = flags.FLAGS(argv)
        except flags.Error as e:
            fail(program, [str(e).splitlines()[0]])
        if len(remaining) > 1:
            fail(program, [stray_arguments(remaining[1:])])
        if after_parsing:
            after_parsing()
        return remaining
    return parse


BOM = "\ufeff"


def stray_arguments(arguments):
    """The line for words of a command line or flagfile that are not flags (absl passes a
    flagfile's lines that do not start with a dash on as arguments)."""
    first = arguments[0]
    if first.startswith(BOM):
        return (f"{first[1:]!r} starts with a byte-order mark (U+FEFF), as a flagfile saved as "
                "'UTF-8 with BOM' does; expected the flagfile in plain UTF-8")
    shown = " ".join(repr(a) for a in arguments[:3]) + (" ..." if len(arguments) > 3 else "")
    return f"unexpected arguments: {shown} (flags are written --name=value, one per line)"


def user_errors():
    """The exception types whose message reports a user's mistake."""
    from gan import config, data, rundir
    return (rundir.RunError, config.ConfigError, data.DataError)


def run(main, program, argv=None, after_parsing=None):
    """app.run(main) with one-line errors for bad flags and for the user's mistakes; argv
    defaults to sys.argv. `after_parsing()` runs once the flags are parsed and before absl's
    init callbacks, one of which (TensorFlow's own) already lists the devices, and with that
    fixes TensorFlow's XLA flags for the process."""
    def guarded(argv):
        try:
            return main(argv)
        except OSError as e:  # a missing run, an unwritable output, a full disk
            fail(program, [f"{e.filename}: {e.strerror or e}" if e.filename else str(e)])
        except user_errors() as e:
            fail(program, str(e).splitlines()[:1])
    app.run(guarded, argv=argv, flags_parser=_parser(program, after_parsing))


def check_output_path(path, suffixes=(), flag="output"):
    """Creates the directory of an output file if needed; one line when that is impossible or
    the name lacks one of `suffixes`."""
    if suffixes and not path.endswith(tuple(suffixes)):
        return f"--{flag}={path}: expected a file name ending in {' or '.join(suffixes)}"
    if os.path.isdir(path):
        return f"--{flag}={path} is a directory; expected a file path"
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        return f"--{flag}={path}: cannot create its directory {directory}: {e.strerror or e}"
    if not os.access(directory, os.W_OK):
        return f"--{flag}={path}: its directory {directory} is not writable"
    return None


def check_output_dir(path, flag="output"):
    """Creates an output directory if needed and writes a probe file in it; one line when that
    fails."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"--{flag}={path} exists and is not a directory"
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as e:
        return f"--{flag}={path} is not writable: {e}"
    return None
