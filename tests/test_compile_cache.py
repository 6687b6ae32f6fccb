"""gan.train's persistent XLA cache (--xla_cache_dir, gan.compile_cache): a second run loads the
compiled loop instead of compiling it, and trains exactly as the first did."""

import glob
import os

import tensorflow as tf

from gan import compile_cache, rundir
from helpers import SMALL, assert_same_weights, run_module

COMPILED = [*(flag for flag in SMALL if not flag.startswith("--jit_compile")),
            "--jit_compile=true", "--num_steps=20", "--checkpoint_every=20"]


def cache_entries(directory):
    return {path: os.stat(path).st_mtime_ns
            for path in glob.glob(os.path.join(directory, "gan_*_XLA_CPU_JIT.pb"))}


def latest_checkpoint(logdir):
    return tf.train.latest_checkpoint(rundir.checkpoint_dir(logdir))


def test_a_second_run_loads_the_compiled_loop_and_trains_the_same(tmp_path):
    cache = str(tmp_path / "xla")
    run_module("gan.train", *COMPILED, f"--logdir={tmp_path / 'first'}", f"--xla_cache_dir={cache}")
    written = cache_entries(cache)
    assert written, os.listdir(cache)
    run_module("gan.train", *COMPILED, f"--logdir={tmp_path / 'second'}",
               f"--xla_cache_dir={cache}")
    # Nothing rewritten: TensorFlow writes an entry only after compiling, so the loop was loaded.
    assert cache_entries(cache) == written
    assert_same_weights(latest_checkpoint(tmp_path / "first"),
                        latest_checkpoint(tmp_path / "second"))


def test_an_unwritable_cache_directory_is_one_line_and_the_run_goes_on(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    result = run_module("gan.train", *COMPILED, f"--logdir={tmp_path / 'run'}",
                        f"--xla_cache_dir={not_a_directory}")
    assert (f"not caching compiled loops: --xla_cache_dir={not_a_directory} exists and is not a "
            "directory") in result.stdout
    assert latest_checkpoint(tmp_path / "run").endswith("-20")


def test_entries_are_kept_apart_by_what_decides_the_machine_code(monkeypatch, tmp_path):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    plain = compile_cache.fingerprint()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert compile_cache.fingerprint() != plain
    monkeypatch.setattr(tf, "__version__", "0.0.0")
    monkeypatch.delenv("XLA_FLAGS")
    assert compile_cache.fingerprint() != plain


def test_enable_adds_to_the_tensorflow_flags_and_leaves_a_cache_already_set(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    assert compile_cache.enable(str(tmp_path / "xla")) is None
    flags = os.environ["TF_XLA_FLAGS"].split()
    assert flags[0] == "--tf_xla_auto_jit=0"
    assert f"--tf_xla_persistent_cache_directory={tmp_path / 'xla'}" in flags
    assert f"--tf_xla_persistent_cache_prefix=gan_{compile_cache.fingerprint()}" in flags
    set_by_user = "--tf_xla_persistent_cache_directory=/elsewhere"
    monkeypatch.setenv("TF_XLA_FLAGS", set_by_user)
    assert "already sets" in compile_cache.enable(str(tmp_path / "xla"))
    assert os.environ["TF_XLA_FLAGS"] == set_by_user
    monkeypatch.delenv("TF_XLA_FLAGS")
    assert "space" in compile_cache.enable(str(tmp_path / "with space"))
    assert "TF_XLA_FLAGS" not in os.environ
