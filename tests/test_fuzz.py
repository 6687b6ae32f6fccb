"""Every entry point, fed bad values for each of its flags, exits non-zero with one line and no
traceback. The values are generated from the flag definitions (and, for gan.train, the run schema)
by tests/fuzz_driver.py with a fixed seed; see its docstring."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, run_module

CASES_PER_ENTRY_POINT = 60
ENTRY_POINTS = ["gan.train", "gan.sample", "gan.evaluate", "gan.export", "gan.classifier",
                "benchmark.py"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run for the readers to start from: the seed's networks, shrunk, 2 steps."""
    logdir = str(tmp_path_factory.mktemp("tiny_run"))
    run_module("gan.train", "--flagfile=experiments/seed.flags", f"--logdir={logdir}",
               "--num_steps=2", "--eval_every=0", "--g_hidden=16", "--d_hidden=16")
    return logdir


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_bad_flag_values_get_one_line_and_no_traceback(entry_point, tiny_run, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "fuzz_driver.py"), entry_point,
         str(tmp_path), tiny_run, str(CASES_PER_ENTRY_POINT), "20261128"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    outcomes = report["outcomes"]
    assert len(outcomes) >= CASES_PER_ENTRY_POINT
    program = entry_point
    for outcome in outcomes:
        case = f"--{outcome['flag']}={outcome['value']!r}: {outcome}"
        assert outcome["traceback"] is None, case
        assert outcome["exit"] not in (0, None), case
        lines = [line for line in outcome["stderr"].splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), case
    # Every flag the entry point defines gets at least one bad value.
    assert {outcome["flag"] for outcome in outcomes} == set(report["flags"])
    assert len(report["flags"]) >= (40 if entry_point == "gan.train" else 3)
