r"""Evaluates a trained generator: `python -m gan.evaluate --logdir=runs/seed`.

Restores the latest checkpoint of the run (or --checkpoint=PATH, or --checkpoint=best), draws
--num_samples images, prints FID, KID, classifier score, precision/recall and class coverage against
the training set, and writes them as JSON (default <logdir>/eval/step_NNNNNN.json).

`python -m gan.evaluate --samples=FILE.npy --output=FILE.json` scores any uint8 [N, 28, 28]
samples (e.g. another implementation's) with the same metrics.
`python -m gan.evaluate --reference --dataset=mnist` prints the reference values instead: the real
test set (the floor a perfect generator would reach) and uniform noise (a ceiling).
"""

import json
import os
import zipfile

from absl import flags
import numpy as np

from gan import cli, data, files, rundir

from gan import evaluator as evaluator_lib
from gan import config as config_lib

PROGRAM = "gan.evaluate"
MIN_SAMPLES = 10
MAX_SAMPLES = 1_000_000  # the largest --eval_num_samples of a training

FLAGS = flags.FLAGS


def define_flags():
    cli.define_run_flags()
    flags.DEFINE_integer("num_samples", 10000, "Generated samples to evaluate.",
                         lower_bound=MIN_SAMPLES, upper_bound=MAX_SAMPLES)
    flags.DEFINE_integer("seed", 0, "Seed of the evaluation noise.", lower_bound=0,
                         upper_bound=config_lib.SEED.high)
    flags.DEFINE_string("output", None, "JSON file for the results; default "
                        "<logdir>/eval/step_NNNNNN.json.")
    flags.DEFINE_string("data_dir", None, "Directory with the dataset's IDX files.")
    flags.DEFINE_boolean("reference", False, "Print the real-data floor and noise ceiling for "
                         "--dataset instead of evaluating a run.")
    flags.DEFINE_enum("dataset", "mnist", list(data.DATASETS), "Dataset for --reference and "
                      "--samples.")
    flags.DEFINE_string("samples", None, "Score these samples instead of a run: a .npy file of "
                        "uint8 images [N, 28, 28] (or [N, 28, 28, 1]), e.g. another "
                        "implementation's, against --dataset's training set.")
    flags.DEFINE_enum("generator", "auto", ["auto", "raw", "ema", "both"],
                      "Which generator to measure: auto (G's moving average when the run keeps "
                      "one, else G), raw (G itself), ema (the average), or both.")


def reference_values(dataset, num_samples, data_dir=None):
    """{'real_test': metrics of the test set, 'uniform_noise': metrics of U(-1, 1) images}."""
    evaluator = evaluator_lib.Evaluator(dataset, num_samples, data_dir)
    test = data.load(dataset, "test", data_dir).images[:num_samples]
    noise = np.random.default_rng(0).uniform(-1, 1, test.shape).astype(np.float32)
    return {"real_test": evaluator.evaluate_images(test),
            "uniform_noise": evaluator.evaluate_images(noise)}


def load_samples(path):
    """uint8 [N, 28, 28, 1] images from a .npy file; RunError naming the file otherwise."""
    try:
        samples = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise rundir.RunError(f"--samples={path}: no such file") from None
    except IsADirectoryError:
        raise rundir.RunError(f"--samples={path} is a directory; expected a .npy file") from None
    except EOFError:
        raise rundir.RunError(f"--samples={path}: the file is empty; expected a .npy array of "
                              "uint8 images [N, 28, 28]") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise rundir.RunError(f"--samples={path}: not a readable .npy array ({reason})") from None
    if not isinstance(samples, np.ndarray):  # np.load reads a zip (.npz) as a dict of arrays
        names = list(samples.files)[:3]
        samples.close()
        raise rundir.RunError(f"--samples={path}: holds an .npz archive of arrays {names}; "
                              "expected one .npy array of uint8 images [N, 28, 28] (np.save)")
    if samples.ndim == 4 and samples.shape[-1] == 1:
        samples = samples[..., 0]
    if samples.dtype != np.uint8 or samples.ndim != 3 or samples.shape[1:] != (28, 28):
        raise rundir.RunError(f"--samples={path}: expected uint8 images [N, 28, 28], found "
                              f"{samples.dtype} {list(samples.shape)}")
    if len(samples) < MIN_SAMPLES:
        raise rundir.RunError(f"--samples={path}: expected at least {MIN_SAMPLES} images, found "
                              f"{len(samples)}")
    return samples[..., None]


def flag_errors():
    errors = []
    if FLAGS.data_dir and not os.path.isdir(FLAGS.data_dir):
        errors.append(f"--data_dir={FLAGS.data_dir}: no such directory")
    if FLAGS.output:
        errors.append(files.check_output_path(FLAGS.output))
    if FLAGS.samples and (FLAGS.reference or FLAGS.logdir):
        errors.append("--samples scores a file on its own; drop --logdir and --reference")
    elif FLAGS.samples and not FLAGS.output:
        errors.append("--samples needs --output=FILE.json for the results")
    if not FLAGS.reference and not FLAGS.logdir and not FLAGS.samples:
        errors.append("--logdir is required (or --samples or --reference)")
    elif FLAGS.logdir and not FLAGS.output and os.path.isdir(FLAGS.logdir):
        # The default output, <logdir>/eval/, is checked before the evaluation's minutes.
        eval_dir = os.path.join(FLAGS.logdir, "eval")
        problem = files.check_output_dir(eval_dir, "logdir")
        if problem:
            errors.append(f"{problem}; results go to {eval_dir}/ (or pass --output=FILE.json)")
    return [e for e in errors if e]


def main(argv):
    del argv
    errors = flag_errors()
    if errors:
        cli.fail(PROGRAM, errors)
    if FLAGS.samples:
        samples = load_samples(FLAGS.samples)
        evaluator = evaluator_lib.Evaluator(FLAGS.dataset, len(samples), FLAGS.data_dir)
        results = evaluator.evaluate_images(samples.astype(np.float32) / 127.5 - 1.0)
        print(f"{FLAGS.samples} ({len(samples)} samples, against {FLAGS.dataset}): "
              f"{evaluator_lib.format_metrics(results)}")
        results.update(samples=FLAGS.samples, dataset=FLAGS.dataset)
        output = FLAGS.output
    elif FLAGS.reference:
        results = reference_values(FLAGS.dataset, FLAGS.num_samples, FLAGS.data_dir)
        for name, values in results.items():
            print(f"{FLAGS.dataset} {name}: {evaluator_lib.format_metrics(values)}")
        output = FLAGS.output
    else:
        config, state, path = cli.load_run_from_flags()
        has_ema = config.model.g_ema_decay > 0
        if FLAGS.generator in ("ema", "both") and not has_ema:
            cli.fail(PROGRAM, [f"--generator={FLAGS.generator}: {FLAGS.logdir} keeps no moving "
                               "average of G (trained with --g_ema_decay=0); expected auto or raw"])
        which = {"auto": [None], "raw": ["raw"], "ema": ["ema"], "both": ["raw", "ema"]}[
            FLAGS.generator]
        evaluator = evaluator_lib.Evaluator(config.data.dataset, FLAGS.num_samples, FLAGS.data_dir)
        step = int(state.step.numpy())
        measured = []
        for generator in which:
            result = evaluator_lib.evaluate_state(evaluator, state, FLAGS.seed, generator)
            print(f"{path} (step {step}, {result['generator']} generator): "
                  f"{evaluator_lib.format_metrics(result)}")
            measured.append(result)
        results = measured[0] if len(measured) == 1 else {r["generator"]: r for r in measured}
        results.update(checkpoint=path, step=step, dataset=config.data.dataset)
        output = FLAGS.output or os.path.join(FLAGS.logdir, "eval", f"step_{step:06d}.json")
    if output:
        files.write_atomically(output, json.dumps(results, indent=2).encode())
        print(f"wrote {output}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, PROGRAM)
