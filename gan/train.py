r"""Trains a GAN: `python -m gan.train --flagfile=experiments/seed.flags --logdir=runs/seed`.

The command line of `gan.run.train`: one flag per setting of `gan.config` (defined by
`define_flags`, so importing this module registers none), plus --logdir, --restart and
--xla_cache_dir. Rerunning the same command resumes from the latest checkpoint.
"""

from absl import flags

from gan import cli, compile_cache, data, run, schema
from gan import config as config_lib
from gan.errors import StopTraining

PROGRAM = "gan.train"
FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """The run settings' flags and gan.train's own, on `flag_values`."""
    config_lib.define_flags(flag_values)
    flags.DEFINE_string("logdir", None, "Directory for events, samples and checkpoints; "
                        "rerunning with the same logdir resumes.", flag_values=flag_values)
    flags.DEFINE_boolean("restart", False, "Start over in a logdir that holds a previous run: "
                         "the old files are moved to <logdir>/archived-<time>/, never deleted.",
                         flag_values=flag_values)
    flags.DEFINE_string("xla_cache_dir", compile_cache.DEFAULT_DIR,
                        "Where TensorFlow keeps compiled XLA training loops between runs, so that "
                        "a run compiled before on this machine starts without compiling; empty "
                        "to compile every time.", flag_values=flag_values)
    flags.mark_flag_as_required("logdir", flag_values=flag_values)
    if flag_values is FLAGS:  # so --help lists the run settings (gan.schema defines them)
        flags.adopt_module_key_flags(schema)


def fail(lines, exit_code=cli.USAGE_EXIT_CODE):
    cli.fail(PROGRAM, lines, exit_code)


def main(argv):
    del argv  # cli.run refuses positional arguments
    try:
        config = config_lib.from_flags(FLAGS)
        result = run.train(config, FLAGS.logdir, FLAGS.restart, handle_signals=True)
    except config_lib.ConfigError as e:
        fail(e.lines)
    except data.DataError as e:
        fail([str(e)])
    except OSError as e:  # e.g. a full disk while writing samples or events
        fail([f"could not write {e.filename or FLAGS.logdir}: {e.strerror or e}. "
              f"{run.AFTER_WRITE_FAILURE}"])
    except StopTraining as e:
        fail(str(e).splitlines(), e.exit_code)
    if result.stopped_by:
        print(f"stopped by signal {result.stopped_by} at step {result.step}; checkpoint saved, "
              "rerun the same command to resume.", flush=True)
        return
    rollbacks = (f" after {result.rollbacks} roll-back{'s' if result.rollbacks > 1 else ''}"
                 if result.rollbacks else "")
    print(f"Done at step {result.step}{rollbacks}; logdir {FLAGS.logdir}", flush=True)


def enable_compile_cache():
    """--xla_cache_dir, before TensorFlow reads its XLA flags (see cli.run)."""
    if FLAGS.xla_cache_dir:
        not_cached = compile_cache.enable(FLAGS.xla_cache_dir)
        if not_cached:
            print(f"not caching compiled loops: {not_cached}", flush=True)


if __name__ == "__main__":
    define_flags()
    cli.run(main, PROGRAM, after_parsing=enable_compile_cache, fast_exit=True)
