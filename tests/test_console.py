"""The quiet console: gan's programs print the project's own lines and none of TensorFlow's
chatter; TensorFlow's real warnings and errors, and crashes, still show; TF_CPP_MIN_LOG_LEVEL set
by the user turns the filter off."""

import re
import subprocess
import sys

from gan import _console
from helpers import REPO, SMALL, user_environment

# Lines TensorFlow 2.21 printed on a CPU-only machine in a seed run with a warm XLA cache (their
# long tails cut).
CHATTER = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796161640.371743    6205 port.cc:153] oneDNN custom operations are on. You may "
    b"see slightly different numerical results due to floating-point round-off errors",
    b"I0000 00:00:1796161640.372205    6205 cudart_stub.cc:31] Could not find cuda drivers on "
    b"your machine, GPU will not be used.",
    b"I0000 00:00:1796161640.489317    6205 cpu_feature_guard.cc:227] This TensorFlow binary is "
    b"optimized to use available CPU instructions in performance-critical operations.",
    b"To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other "
    b"operations, rebuild TensorFlow with the appropriate compiler flags.",
    b"E0000 00:00:1796161643.903703    6205 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    b"CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    b"I0000 00:00:1796161645.970077    6205 service.cc:153] XLA service 0x55e590799e60 "
    b"initialized for platform Host (this does not guarantee that XLA will be used). Devices:",
    b"I0000 00:00:1796161648.679752    6205 device_compiler.h:208] Compiled cluster using XLA!  "
    b"This line is logged at most once for the lifetime of the process.",
    b"E0000 00:00:1796161660.347764    6288 text_format.cc:378] Error parsing text-format "
    b"tensorflow.XlaSerializedCacheEntry: 2:1: Expected identifier, got: 8",
    b"E0000 00:00:1796161660.382729    6288 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. "
    b"Target machine feature +prefer-no-scatter is not  supported on the host machine.",
    b"I1201 21:47:29.560591 140605607340928 functional_saver.py:440] Sharding callback duration: "
    b"44 microseconds",
]
KEPT = [
    b"gan.train: error: --batch_size=-1: expected an integer >= 1",
    b"Traceback (most recent call last):",
    b"Fatal Python error: Segmentation fault",
    b"W1201 21:47:29.560591 140605607340928 saver.py:12] a warning of TensorFlow's Python side",
    b"W0000 00:00:1796161660.382729    6288 bfc_allocator.cc:296] Allocator ran out of memory",
    b"E0000 00:00:1796161660.382729    6288 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. "
    b"Target machine feature +avx512f is not supported on the host machine.",
    b"F0000 00:00:1796161660.382729    6288 tensor.cc:10] Check failed: dims() == 2",
    b"",
]


def test_filter_drops_tensorflows_chatter_and_keeps_everything_else():
    for line in CHATTER:
        assert not _console.keeps(line), line
    for line in KEPT:
        assert _console.keeps(line), line
    # With a GPU's device node present, a failed cuInit is a real error.
    assert _console.keeps(CHATTER[5], no_gpu=False)


def test_only_gan_programs_filter_and_a_users_level_wins():
    assert _console.wanted(["python3", "-m", "gan.train", "--logdir=x"], "-m", {})
    assert _console.wanted(["python3", "experiments/benchmark.py"], "experiments/benchmark.py", {})
    assert not _console.wanted(["python3", "-m", "pytest"], "-m", {})
    assert not _console.wanted(["python3", "mine.py"], "mine.py", {})
    assert not _console.wanted(["python3", "-m", "gan.train"], "-m", {"TF_CPP_MIN_LOG_LEVEL": "2"})


def run(module, *args, env=None):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env or user_environment())


# Every line gan.train, gan.sample and gan.evaluate print in the runs below.
OWN_LINES = [
    r"generator: [\d,]+ parameters; discriminator: [\d,]+; XLA (on|off); one device",
    r"not caching compiled loops: .*",
    r"step +\d+/\d+  d_loss -?\d+\.\d+  g_loss .* steps/s  ETA \d+s",
    r"eval at step \d+ \(raw generator\): fid [\d.]+  kid .*",
    r"Done at step \d+; logdir .*",
    r"Resumed from .*ckpt-\d+ at step \d+",
    r"wrote \d+ samples to .*",
    r".*ckpt-\d+ \(step \d+, raw generator\): fid [\d.]+  kid .*",
    r"wrote .*step_\d{6}\.json",
]


def assert_own_lines(result):
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == "", result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines
    for line in lines:
        assert any(re.fullmatch(pattern, line) for pattern in OWN_LINES), line


def test_train_sample_and_evaluate_print_only_their_own_lines(tmp_path):
    """With XLA on (its compile and cache lines), checkpoints (absl's INFO lines) and an
    evaluation; then a sample grid and an offline evaluation."""
    logdir = str(tmp_path / "run")
    flags = [a for a in SMALL if not a.startswith("--jit_compile")]
    train = [*flags, "--num_steps=20", "--checkpoint_every=10", "--eval_every=20",
             "--eval_num_samples=200", f"--logdir={logdir}"]
    assert_own_lines(run("gan.train", *train))
    assert_own_lines(run("gan.sample", f"--logdir={logdir}", "--num_samples=16",
                         f"--output={tmp_path / 'grid.png'}"))
    assert_own_lines(run("gan.evaluate", f"--logdir={logdir}", "--num_samples=200"))

    # A mistake is its one line, which reaches the console before the program's exit.
    refused = run("gan.sample", f"--logdir={logdir}", "--num_samples=0",
                  f"--output={tmp_path / 'x.png'}")
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("gan.sample: error: flag --num_samples=0")

    # The switch: a TF_CPP_MIN_LOG_LEVEL of the user's own leaves TensorFlow's logging as it is.
    loud = run("gan.sample", f"--logdir={logdir}", "--num_samples=16",
               f"--output={tmp_path / 'loud.png'}", env=user_environment(TF_CPP_MIN_LOG_LEVEL="0"))
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert any(_console.keeps(line.encode()) is False
               for line in loud.stderr.splitlines()), loud.stderr[-3000:]


def test_a_crash_still_reaches_the_console(tmp_path):
    """The filter outlives the program it serves: a segfault's report is passed on."""
    script = tmp_path / "experiments" / "crash.py"
    script.parent.mkdir()
    script.write_text(f"import sys; sys.path.insert(0, {REPO!r})\n"
                      "import faulthandler, gan, ctypes\n"
                      "faulthandler.enable()\n"
                      "print('before the crash', file=sys.stderr, flush=True)\n"
                      "ctypes.string_at(0)\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120, env=user_environment())
    assert result.returncode != 0
    assert "before the crash" in result.stderr
    assert "Fatal Python error: Segmentation fault" in result.stderr, result.stderr[-3000:]
    assert not any(not _console.keeps(line.encode()) for line in result.stderr.splitlines())
