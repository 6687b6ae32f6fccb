"""The benchmark's analytic FLOP count against the matmuls XLA actually compiles for one iteration."""

import math
import re

import pytest
import tensorflow as tf

from gan import config as config_lib
from gan import data, trainer
from helpers import load_benchmark



INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = \w+\[([\d,]*)\]")
DOT = re.compile(r"= \w+\[([\d,]*)\]\S* dot\(%(\S+), %(\S+)\),.*?lhs_contracting_dims=\{([\d,]*)\}")


def dims(text):
    return [int(d) for d in text.split(",") if d]


def compiled_matmul_flops(hlo_text):
    """2 * (output elements) * (contracted size), summed over every dot in an HLO module."""
    shapes = {}
    for line in hlo_text.splitlines():
        match = INSTRUCTION.match(line)
        if match:
            shapes[match.group(1)] = dims(match.group(2))
    total = 0
    for line in hlo_text.splitlines():
        match = DOT.search(line)
        if match:
            output, lhs, _, contracting = match.groups()
            contracted = math.prod(shapes[lhs][i] for i in dims(contracting))
            total += 2 * math.prod(dims(output)) * contracted
    return total


@pytest.mark.parametrize("batch", [32, 64])
def test_flop_count_matches_the_compiled_iteration(batch):
    benchmark = load_benchmark()
    config = benchmark.seed_mlp_config(batch, d_update="joint", d_fake_batchnorm="train")
    state = config_lib.make_state(config)
    runner = trainer.Trainer(state, config_lib.trainer_config(config),
                             data.load("mnist", "test").images[:1000])
    iteration = tf.function(runner._iteration, jit_compile=True)
    hlo = iteration.experimental_get_compiler_ir(runner.images)(stage="optimized_hlo")
    compiled = compiled_matmul_flops(hlo)
    counted = benchmark.mlp_flops_per_iteration(config)
    # XLA may turn the 1-unit output layer's matmuls into multiply-reduce: 0.1% of the FLOPs.
    assert compiled == pytest.approx(counted, rel=2e-3), (compiled, counted)
