"""Shared helpers for the end-to-end tests: run the entry points as a user would, read what they
leave behind."""

import glob
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import types

import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small networks keep each subprocess quick; the code paths are the full ones. XLA is off: in
# runs this short its compilation is most of the time. The compiled path is covered by the
# trainer's replays, the conformance suite, and the end-to-end trainings that keep mlp's default
# (test_evaluate's and test_conditional's fixtures, tests/test_learning.py).
SMALL = ["--flagfile=experiments/mnist_mlp.flags", "--g_hidden=64,128", "--d_hidden=128,64",
         "--batch_size=16", "--eval_every=0", "--log_every=10", "--sample_every=1000",
         "--jit_compile=false"]


def load_experiment_script(name):
    """experiments/<name>.py as a module (the scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark():
    return load_experiment_script("benchmark")


def user_environment(**extra):
    """The environment of a user who has not set TF_CPP_MIN_LOG_LEVEL (the suite's conftest sets
    it for its own process), so that the entry points run with their own quiet console."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return dict(env, PYTHONUNBUFFERED="1", **extra)


_fork_server = {}  # this test process's tests/fork_server.py, once started


def _forked(command, timeout):
    """`python -m module args...` forked from this process's fork server (started on first use),
    as a CompletedProcess; None where there is none (no fork, or GAN_TEST_FRESH_PROCESSES set)."""
    if os.environ.get("GAN_TEST_FRESH_PROCESSES") or not hasattr(os, "fork"):
        return None
    server = _fork_server.get("process")
    if server is None or server.poll() is not None:
        server = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "fork_server.py")],
                                  cwd=REPO, env=user_environment(), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert json.loads(server.stdout.readline()) == {"ready": True}
        _fork_server["process"] = server
    with tempfile.TemporaryDirectory() as folder:
        out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
        server.stdin.write(json.dumps({"module": command[2], "argv": command[3:], "cwd": REPO,
                                       "env": user_environment(), "stdout": out,
                                       "stderr": err}) + "\n")
        server.stdin.flush()
        pid = json.loads(server.stdout.readline())["pid"]
        expired = threading.Event()

        def kill():
            expired.set()
            os.kill(pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            returncode = json.loads(server.stdout.readline())["returncode"]
        finally:
            timer.cancel()
        with open(out, errors="replace") as f, open(err, errors="replace") as g:
            stdout, stderr = f.read(), g.read()
    if expired.is_set():
        raise subprocess.TimeoutExpired(command, timeout, stdout, stderr)
    return subprocess.CompletedProcess(command, returncode, stdout, stderr)


def run_module(module, *args, timeout=600, check=True):
    """Runs `python -m module args...` from the repository root; returns the CompletedProcess.
    The process is forked from a warm one that has imported TensorFlow (tests/fork_server.py),
    which saves each call TensorFlow's import; GAN_TEST_FRESH_PROCESSES=1 starts each afresh."""
    command = [sys.executable, "-m", module, *args]
    result = _forked(command, timeout)
    if result is None:
        result = subprocess.run(command, cwd=REPO, env=user_environment(), capture_output=True,
                                text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} exited {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr[-5000:]}")
    return result


def run_train_in_one_process(cases, folder):
    """gan.train on each of {name: argv} inside one process (tests/fuzz_driver.py --given), for
    command lines that are refused before any training: each would otherwise cost seconds of
    TensorFlow start-up. Returns {name: result} with returncode (None if an exception escaped),
    stdout, and stderr (the traceback appended, if any)."""
    cases_path = os.path.join(folder, "cases.json")
    with open(cases_path, "w") as f:
        json.dump(cases, f)
    driver = subprocess.run([sys.executable, os.path.join(REPO, "tests", "fuzz_driver.py"),
                             "--given", cases_path], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert driver.returncode == 0, driver.stderr[-3000:]
    outcomes = json.loads(driver.stdout.strip().splitlines()[-1])
    return {name: types.SimpleNamespace(returncode=outcome["exit"], stdout=outcome["stdout"],
                                        stderr=outcome["stderr"] + (outcome["traceback"] or ""))
            for name, outcome in outcomes.items()}


def read_png(path):
    return tf.io.decode_png(tf.io.read_file(path)).numpy()


def scalar_events(logdir):
    """{tag: {step: value}} for the scalars, plus {'__images__': tags, '__text__': tags}."""
    scalars, image_tags, text_tags = {}, set(), set()
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "images":
                    image_tags.add(value.tag)
                elif plugin == "text":
                    text_tags.add(value.tag)
                else:
                    scalars.setdefault(value.tag, {})[event.step] = float(
                        tf.make_ndarray(value.tensor))
    scalars["__images__"], scalars["__text__"] = image_tags, text_tags
    return scalars


def summary_records(logdir):
    """(tag, step) of every summary record in the logdir's event files, repeats included."""
    return [(value.tag, event.step)
            for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
            for event in tf.compat.v1.train.summary_iterator(path)
            for value in event.summary.value]


def checkpoint_values(path):
    """{variable name: array} of a checkpoint's training state (path prefix); leaves out the
    bookkeeping of how many saves the process made."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if not name.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}


def assert_same_weights(path_a, path_b):
    a, b = checkpoint_values(path_a), checkpoint_values(path_b)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def assert_same_images(got, want):
    """uint8 images of one generator computed by two programs (eager kernels and a SavedModel's
    graph, say), which may round differently. A pixel changes only where (G(z) + 1) * 127.5 lies
    within the two programs' float32 difference of a .5 boundary: about 127.5 * 1e-6 = 1e-4 of
    a level for G's outputs, so about 2e-4 of the pixels. Allowed: one level, on at most 1e-3
    of them (and on one pixel of a small set)."""
    assert got.shape == want.shape and got.dtype == want.dtype == np.uint8
    off = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert off.max(initial=0) <= 1, off.max()
    assert np.count_nonzero(off) <= max(1, 1e-3 * off.size), (np.count_nonzero(off), off.size)


def assert_clean_failure(result, *fragments, exit_code=2):
    assert result.returncode == exit_code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr[-3000:])


# XLA's optimized HLO text: an instruction's name and output dimensions; a dot's output, operands
# and the lhs's contracted dimensions.
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = \w+\[([\d,]*)\]")
DOT = re.compile(r"= \w+\[([\d,]*)\]\S* dot\(%(\S+), %(\S+)\),.*?lhs_contracting_dims=\{([\d,]*)\}")


def dims(text):
    return [int(d) for d in text.split(",") if d]


def compiled_dots(hlo_text):
    """The dot instructions of an HLO module, as a multiset of (output shape, contracted sizes)."""
    shapes = {}
    for line in hlo_text.splitlines():
        match = INSTRUCTION.match(line)
        if match:
            shapes[match.group(1)] = dims(match.group(2))
    dots = []
    for line in hlo_text.splitlines():
        match = DOT.search(line)
        if match:
            output, lhs, _, contracting = match.groups()
            dots.append((tuple(dims(output)), tuple(shapes[lhs][i] for i in dims(contracting))))
    return sorted(dots)


def run_config(penalties=(), **flat):
    """A RunConfig of the defaults with some settings changed by flag name; `penalties`
    ((name, weight), ...) sets their --<name>_weight."""
    from gan import config
    flat.update({f"{name}_weight": weight for name, weight in penalties})
    return config.RunConfig().replace(**flat)


def network_config(**fields):
    """The networks' config of the default run, with some of its fields changed."""
    import dataclasses
    from gan import build, config
    return dataclasses.replace(build.network_config(config.RunConfig()), **fields)
