"""Runs an entry point on many bad command lines inside one process; prints the outcomes as JSON.

    python tests/fuzz_driver.py ENTRY_POINT WORKDIR RUN_LOGDIR NUM_CASES SEED
    python tests/fuzz_driver.py --given CASES.json    # {name: gan.train's argv}, for other tests

Each case is the entry point's valid base arguments plus one bad value for one flag. The bad
values are generated from the flag definitions (absl's flag types, choices and bounds; for
gan.train the run schema's types and ranges) and from each path flag's role (an input that must
exist, an output that must be writable), with a seeded RNG. Starting a Python process per case would
cost seconds of TensorFlow import each, so the cases share one process: absl flags are reset and
parsed again for each, and the program's stderr is captured.
"""

import contextlib
import importlib
import io
import itertools
import json
import os
import random
import shutil
import string
import sys
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's gan, whichever one pip installed


def random_word(rng, length=6):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def not_a_number(rng):
    return rng.choice(["", "abc", "1..2", "--", "0x1g", "12a", "one", random_word(rng)])


def not_an_integer(rng):
    return rng.choice([not_a_number(rng), f"{rng.uniform(0.1, 99):.2f}", "1e3"])


class Places:
    """Paths that cannot serve: a missing one, one under a regular file, a directory that is no
    run, a regular file."""

    def __init__(self, workdir, run_logdir):
        self.workdir = workdir
        self.damaged_checkpoint = self._damaged_copy(run_logdir)
        self.regular_file = os.path.join(workdir, "a-regular-file")
        with open(self.regular_file, "w") as f:
            f.write("not a directory\n")
        self.empty_dir = os.path.join(workdir, "an-empty-dir")
        os.makedirs(self.empty_dir, exist_ok=True)

    def _damaged_copy(self, run_logdir):
        """A copy of the run's latest checkpoint with its data file cut short."""
        import tensorflow as tf
        source = tf.train.latest_checkpoint(os.path.join(run_logdir, "checkpoints"))
        target = os.path.join(self.workdir, "damaged", os.path.basename(source))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        for suffix in (".index", ".data-00000-of-00001"):
            with open(source + suffix, "rb") as f:
                payload = f.read()
            with open(target + suffix, "wb") as f:
                f.write(payload if suffix == ".index" else payload[:len(payload) // 2])
        return target

    def missing(self, rng):
        return os.path.join(self.workdir, f"missing-{random_word(rng)}", random_word(rng))

    def under_file(self, rng, suffix=""):
        return os.path.join(self.regular_file, random_word(rng) + suffix)

    def input_path(self, rng):
        return rng.choice([self.missing(rng), self.under_file(rng), self.regular_file])

    def run_dir(self, rng):
        return rng.choice([self.input_path(rng), self.empty_dir])

    def output_file(self, rng, suffix):
        return rng.choice([self.under_file(rng, suffix), self.empty_dir,
                           os.path.join(self.workdir, random_word(rng) + ".txt")])

    def output_dir(self, rng):
        return rng.choice([self.under_file(rng), self.regular_file])


def absl_bad_values(flag, rng):
    """A generator of bad values for an absl flag, from its type, choices and bounds."""
    from absl import flags
    parser = flag.parser
    if isinstance(flag, flags.BooleanFlag) or flag.flag_type() == "bool":
        return lambda: rng.choice(["maybe", "2", "yess", random_word(rng)])
    if flag.flag_type() == "int":
        low = getattr(parser, "lower_bound", None)
        if low is not None:
            return lambda: rng.choice([not_an_integer(rng), str(low - rng.randint(1, 1000))])
        return lambda: not_an_integer(rng)
    if flag.flag_type() == "float":
        return lambda: not_a_number(rng)
    if getattr(parser, "enum_values", None):
        return lambda: rng.choice([random_word(rng), "", parser.enum_values[0].upper() + "x"])
    return None


def schema_bad_values(setting, rng):
    """A generator of bad values for a run-schema setting, from its type and range."""
    kind, meta = setting.kind, setting.field.metadata
    if kind is bool:
        return lambda: rng.choice(["maybe", "2", random_word(rng)])
    if kind is tuple:
        return lambda: rng.choice(["a,b", "0", f"-{rng.randint(1, 99)},4", "1.5", "8,,x"])
    if setting.choices:
        return lambda: rng.choice([random_word(rng), "", setting.choices[0] + "x"])
    valid = meta["valid"]

    def outside():
        if valid.low is not None and (valid.high is None or rng.random() < 0.5):
            return str(valid.low - (0 if not valid.low_inclusive else rng.choice([1, 0.5, 1e3])))
        return str(valid.high + (0 if not valid.high_inclusive else rng.choice([0.5, 1, 1e3])))
    if kind is int:
        return lambda: rng.choice([not_an_integer(rng), outside()] if valid else
                                  [not_an_integer(rng)])
    if kind is float:
        return lambda: rng.choice([not_a_number(rng), outside()])
    return None


def train_call():
    from gan import cli, train
    train.define_flags()
    return lambda argv: cli.run(train.main, "gan.train", argv)


def entry_point(name, places, run_logdir, rng):
    """(program, call(argv) -> None, base arguments, {flag: bad value generator})."""
    from absl import flags
    from gan import cli
    workdir = places.workdir
    generators = {}
    if name == "gan.train":
        from gan import config
        call = train_call()  # imports gan.train, which defines its flags
        for setting_name, setting in config.SETTINGS.items():
            generator = schema_bad_values(setting, rng)
            if generator:
                generators[setting_name] = generator
        generators["data_dir"] = lambda: places.input_path(rng)
        generators["logdir"] = lambda: places.output_dir(rng)
        generators["restart"] = absl_bad_values(flags.FLAGS["restart"], rng)
        base = ["--flagfile=experiments/seed.flags", f"--logdir={workdir}/train-run",
                "--num_steps=1", "--eval_every=0", "--g_hidden=8", "--d_hidden=8"]
        return "gan.train", call, base, generators
    if name == "benchmark.py":
        from helpers import load_benchmark
        benchmark = load_benchmark()
        for option in ("iterations", "keras_iterations", "rounds"):
            generators[option] = lambda: rng.choice([not_an_integer(rng),
                                                     str(-rng.randint(0, 99))])
        generators["compare"] = lambda: random_word(rng)
        generators["only"] = lambda: "no-such-config-" + random_word(rng)

        def call(argv):
            sys.argv = argv
            benchmark.main()
        return "benchmark.py", call, ["--quick"], generators

    module = importlib.import_module(name)
    module.define_flags()
    for flag in flags.FLAGS.get_key_flags_for_module(module):
        generator = absl_bad_values(flag, rng)
        if generator:
            generators[flag.name] = generator
    if "logdir" in flags.FLAGS:
        generators["logdir"] = lambda: places.run_dir(rng)
        damaged_first = itertools.chain([places.damaged_checkpoint], iter(
            lambda: rng.choice([places.input_path(rng), places.damaged_checkpoint]), None))
        generators["checkpoint"] = lambda: next(damaged_first)
    if "data_dir" in flags.FLAGS:
        generators["data_dir"] = lambda: places.input_path(rng)
    # Each output flag's bad values: where nothing can be written, or a name it cannot take.
    outputs = {
        "gan.sample": lambda: places.output_file(rng, ".npy"),
        "gan.classifier": lambda: places.output_file(rng, ".npz"),
        "gan.evaluate": lambda: rng.choice([places.under_file(rng, ".json"), places.empty_dir]),
        "gan.export": lambda: places.output_dir(rng),
    }
    generators["output"] = outputs[name]
    base = {
        "gan.sample": [f"--logdir={run_logdir}", f"--output={workdir}/out.npy",
                       "--num_samples=10"],
        "gan.evaluate": [f"--logdir={run_logdir}", f"--output={workdir}/out.json",
                         "--num_samples=10"],
        "gan.export": [f"--logdir={run_logdir}", f"--output={workdir}/export"],
        "gan.classifier": ["--epochs=1", f"--output={workdir}/c.npz"],
    }[name]
    return name, lambda argv: cli.run(module.main, name, argv), base, generators


def make_cases(generators, num_cases, rng):
    """Every flag once, then flags at random, until num_cases distinct (flag, value) pairs."""
    names = sorted(generators)
    cases = []
    for attempt in range(50 * num_cases):
        if len(cases) == num_cases:
            break
        name = names[attempt] if attempt < len(names) else rng.choice(names)
        case = (name, generators[name]())
        if case not in cases:
            cases.append(case)
    return cases


def run_case(call, argv):
    """Runs one command line in this process: {exit, traceback, stdout, stderr}."""
    from absl import flags
    flags.FLAGS.unparse_flags()
    stderr, stdout = io.StringIO(), io.StringIO()
    outcome = {"exit": 0, "traceback": None}
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            call(argv)
    except SystemExit as e:
        # sys.exit(None) and sys.exit(0) succeed; sys.exit("text") fails with code 1.
        outcome["exit"] = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException:  # noqa: B902 - any escaping exception is what the tests look for
        outcome["exit"] = None
        outcome["traceback"] = traceback.format_exc()[-3000:]
    outcome["stdout"], outcome["stderr"] = stdout.getvalue(), stderr.getvalue()
    return outcome


def run_given(cases_path):
    """Each named gan.train command line of the JSON file, in this process, in order. A case
    {"copy": [source, destination]} copies a run directory instead (so that later commands can
    work on a copy of what an earlier one trained); {"truncate": path} cuts a file to its first
    third."""
    with open(cases_path) as f:
        cases = json.load(f)
    call = train_call()
    outcomes = {}
    for name, argv in cases.items():
        if isinstance(argv, dict) and "copy" in argv:
            shutil.copytree(*argv["copy"])
            continue
        if isinstance(argv, dict):  # {"truncate": path}: keep its first third
            with open(argv["truncate"], "rb") as f:
                payload = f.read()
            with open(argv["truncate"], "wb") as f:
                f.write(payload[:len(payload) // 3])
            continue
        outcomes[name] = run_case(call, ["gan.train", *argv])
    print(json.dumps(outcomes))


def main():
    os.chdir(REPO)
    from absl import logging
    logging.set_verbosity(logging.ERROR)
    if sys.argv[1] == "--given":
        return run_given(sys.argv[2])
    name, workdir, run_logdir, num_cases, seed = sys.argv[1:6]
    rng = random.Random(int(seed))
    places = Places(workdir, run_logdir)
    program, call, base, generators = entry_point(name, places, run_logdir, rng)
    # At least one case per flag, however many flags the entry point grows.
    cases = make_cases(generators, max(int(num_cases), len(generators)), rng)
    results = []
    for flag_name, value in cases:
        argv = [program, *base, f"--{flag_name}={value}"]
        if flag_name == "compare":
            argv = [program, *base, "--compare", value, value]
        results.append({"flag": flag_name, "value": value, **run_case(call, argv)})
    print(json.dumps({"flags": sorted(generators), "outcomes": results}))


if __name__ == "__main__":
    main()
