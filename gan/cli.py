"""What every `python -m gan.*` entry point shares: a user's mistake is one line on stderr and exit
code 2, never a traceback.

    cli.run(main, "gan.sample")      # instead of app.run(main)

Inside `main`, `cli.fail(program, lines)` reports invalid values; the exceptions that name a user's
mistake (a missing run, a damaged checkpoint, bad data, an unwritable output) are turned into that
line by `run` itself.
"""

import sys

from absl import app, flags

from gan import errors, rundir, schema

# The flags that `define_run_flags` defines belong to the program that calls it, so that its
# --help lists them.
flags.disclaim_key_flags()

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
            fail(program, [schema.stray_arguments(remaining[1:])])
        if after_parsing:
            after_parsing()
        return remaining
    return parse


def run(main, program, argv=None, after_parsing=None, fast_exit=False):
    """app.run(main) with one-line errors for bad flags and for the user's mistakes; argv
    defaults to sys.argv. `after_parsing()` runs once the flags are parsed and before absl's
    init callbacks, one of which (TensorFlow's own) already lists the devices, and with that
    fixes TensorFlow's XLA flags for the process. `fast_exit`: a program's `__main__` whose
    every output is complete when `main` returns (see `exit_after_success`)."""
    if fast_exit:
        try:
            run(main, program, argv, after_parsing)
        except SystemExit as e:
            if e.code not in (None, 0):
                raise
        exit_after_success()
    def guarded(argv):
        try:
            return main(argv)
        except OSError as e:  # a missing run, an unwritable output, a full disk
            fail(program, [f"{e.filename}: {e.strerror or e}" if e.filename else str(e)])
        except errors.UserError as e:
            fail(program, str(e).splitlines()[:1])
    app.run(guarded, argv=argv, flags_parser=_parser(program, after_parsing))


def exit_after_success():
    """Ends a process whose work is done and written: the atexit handlers run (the console's
    stderr filter drains through one), the streams are flushed, and the interpreter's
    teardown is skipped, which with TensorFlow loaded takes 1.4-1.7 s on 2 cores
    (experiments/run_overhead.py) and writes nothing. Not for a failure: whatever a failing
    program has not flushed (a summary writer's last records) is left to the teardown."""
    import atexit
    import os
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def define_run_flags():
    """--logdir and --checkpoint, for the programs that read a run back (see `load_run`)."""
    flags.DEFINE_string("logdir", None, "Run directory written by gan.train.")
    flags.DEFINE_string("checkpoint", None, "Checkpoint path prefix, or 'best' for the best-FID "
                        "one; default: the latest.")


def load_run_from_flags():
    """`rundir.load_run` of --logdir and --checkpoint (`run` reports its errors in one line)."""
    return rundir.load_run(flags.FLAGS.logdir, flags.FLAGS.checkpoint)
