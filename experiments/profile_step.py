"""Where one compiled training iteration spends its time, by kind of XLA operation.

    python experiments/profile_step.py                                  # the b32 joint step
    python experiments/profile_step.py --config="gan b256 (joint D step)" --iterations=20

Runs a configuration of experiments/benchmark.py (same names) under TensorFlow's profiler, with
XLA's CPU runtime tracing every HLO instruction it executes (XLA_FLAGS
--xla_cpu_enable_xprof_traceme), and sums the traced time of each instruction over the timed
iterations. Each instruction is put in a category from XLA's optimized HLO of the same compiled
loop (its opcode, and the TensorFlow op it came from):

    gradient norms      the global norms logged and checked for NaN every iteration (with
                        what XLA adds to them, such as a tree reduction's reduce-window)
    matmuls             dot and convolution instructions, and fusions that contain one
    optimizer updates   the optimizers' arithmetic and assignments (slots included)
    copies              copy instructions (buffers XLA could not update in place)
    random numbers      the noise and the batch indices
    the rest            activations, biases, BatchNorm, the losses, the batch gather, ...

This answers the performance issue's "what is the remaining time spent on" for the step the
targets are stated against: the matmuls' share is the most a faster matmul could give, and the
rest is what a "matmuls alone" row leaves out. The tracing itself costs some time per
instruction, so compare shares, not the traced rate, with the benchmark's rows (the untraced rate
is printed beside it).

A configuration that runs without XLA (the DCGAN rows) is profiled by TensorFlow op instead: each
op the executor ran, timed on TensorFlow's inter-op threads (an op's intra-op threads work within
that time), put in the same categories by its type and name scope (matmuls: every MatMul and
Convolution kernel, their gradients included), and the costliest op types are listed with how
many of each an iteration runs:

    python experiments/profile_step.py --config="dcgan w32 b64 (no XLA)" --iterations=20
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (imports TensorFlow only when used)

CATEGORIES = ["matmuls", "gradient norms", "optimizer updates", "copies", "random numbers",
              "the rest"]
# gan.optimizers' name scope around every update (optimizers.UPDATE_SCOPE; not imported here, so
# that this module loads without TensorFlow).
OPTIMIZER_SCOPE = "optimizer_update"
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = .*?\s([a-z][a-z0-9-]*)\(")
_COMPUTATION = re.compile(r"^%(\S+) \(.*\{\s*$")


def instruction_categories(hlo_text):
    """{HLO instruction name: category} for every instruction of an optimized HLO module."""
    computations, current = {}, None
    instructions = []
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line) or (
            line.startswith("ENTRY ") and re.match(r"ENTRY %(\S+)", line))
        if header:
            current = header.group(1)
            computations[current] = []
            continue
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        computations[current].append(match.group(2))
        name, opcode = match.groups()
        op_type = re.search(r'op_type="([^"]+)"', line)
        op_name = re.search(r'op_name="([^"]+)"', line)
        called = re.search(r"calls=%([^\s,]+)", line)
        operands = re.findall(r"%([\w.-]+)", line.split(" = ", 1)[1].split("),")[0])
        instructions.append((name, opcode, op_type and op_type.group(1),
                             op_name and op_name.group(1), called and called.group(1), operands))

    categories = {}
    for name, opcode, op_type, op_name, called, operands in instructions:
        inner = computations.get(called, []) if opcode == "fusion" else []
        if op_name and "global_norm" in op_name:
            category = "gradient norms"
        elif opcode in ("dot", "convolution") or "dot" in inner or "convolution" in inner:
            category = "matmuls"
        elif opcode == "copy":
            category = "copies"
        elif op_name and OPTIMIZER_SCOPE in op_name:
            category = "optimizer updates"
        elif op_type and (op_type.startswith("StatelessRandom") or op_type == "RngReadAndSkip"):
            category = "random numbers"
        elif op_type is None and operands:
            # XLA's own instructions (e.g. a tree reduction's reduce-window) carry no TensorFlow
            # op: they belong with what they read.
            category = next((categories[o] for o in operands if o in categories), "the rest")
        else:
            category = "the rest"
        categories[name] = category
    return categories


def read_trace(logdir):
    """The XSpace of the latest profiler trace written under logdir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    return space


def traced_durations(logdir):
    """{event name: total picoseconds} over the planes of a profiler trace."""
    totals = collections.Counter()
    for plane in read_trace(logdir).planes:
        for line in plane.lines:
            for event in line.events:
                totals[plane.event_metadata[event.metadata_id].name] += event.duration_ps
    return totals


def op_category(op_name, op_type):
    """The category of a TensorFlow op (a run without XLA) from its type and name scope."""
    if "global_norm" in op_name:
        return "gradient norms"
    if re.search(r"MatMul|Conv", op_type):
        return "matmuls"
    if OPTIMIZER_SCOPE in op_name:
        return "optimizer updates"
    if op_type.startswith("StatelessRandom") or op_type == "RngReadAndSkip":
        return "random numbers"
    if op_type in ("Identity", "Copy"):
        return "copies"
    return "the rest"


def op_durations(logdir):
    """{(op name, op type): (total picoseconds, times run)} of the TensorFlow ops a trace's
    executor threads ran (the events named "name:type" on the tf_Compute lines)."""
    totals = collections.defaultdict(lambda: [0, 0])
    for plane in read_trace(logdir).planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name, _, op_type = plane.event_metadata[event.metadata_id].name.rpartition(":")
                # ("ExecutorState::Process" and the like are the executor's own spans, around
                # the ops.)
                if (name and not name.endswith(":")
                        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", op_type)):
                    totals[name, op_type][0] += event.duration_ps
                    totals[name, op_type][1] += 1
    return totals


def main():
    parser = benchmark.OneLineParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=benchmark.OURS,
                        help="A gan configuration of experiments/benchmark.py, by its name.")
    parser.add_argument("--iterations", type=int, default=200, help="Iterations traced.")
    parser.add_argument("--top", type=int, default=12,
                        help="How many of the costliest instructions outside the matmuls to list.")
    args = parser.parse_args()
    # Before TensorFlow loads: XLA reads its flags once.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_enable_xprof_traceme").strip()
    if args.config not in benchmark.CONFIGS:
        parser.error(f"--config={args.config!r}: expected one of {sorted(benchmark.CONFIGS)}")
    if args.iterations < 1:
        parser.error(f"--iterations={args.iterations}: expected an integer >= 1")
    settings = benchmark.CONFIGS[args.config]
    xla = settings.get("jit_compile", True)

    import gan  # noqa: F401  (its quiet console, installed before TensorFlow loads)
    import tensorflow as tf
    runner = benchmark.make_trainer(settings)
    if xla:
        with runner.strategy.scope():
            hlo = runner._run.experimental_get_compiler_ir(
                runner.images, tf.constant(args.iterations, tf.int32))(stage="optimized_hlo")
        categories = instruction_categories(hlo)

    def run():
        start = time.perf_counter()
        float(runner.run(args.iterations)["d_loss"])
        return time.perf_counter() - start

    run(), run()  # compile and warm up
    untraced = run()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        traced = run()
        tf.profiler.experimental.stop()
        durations = traced_durations(logdir) if xla else op_durations(logdir)
    header = (f"# {args.config}, {args.iterations} iterations; "
              f"{benchmark.cpu_description()[0]}, {os.cpu_count()} cores, "
              f"TensorFlow {tf.__version__}\n"
              f"# untraced {args.iterations / untraced:.1f} iter/s, traced "
              f"{args.iterations / traced:.1f} iter/s")
    if not xla:
        print_op_profile(header, durations, args)
        return

    per_category = collections.Counter()
    per_instruction = []
    for name, picoseconds in durations.items():
        if name in categories:
            per_category[categories[name]] += picoseconds
            per_instruction.append((picoseconds, name, categories[name]))
    total = sum(per_category.values())
    ms_per_iteration = lambda ps: ps / 1e9 / args.iterations  # noqa: E731
    print(header)
    print(f"# time in traced instructions (summed over threads): "
          f"{ms_per_iteration(total):.3f} ms per iteration")
    counts = collections.Counter(category for _, _, category in per_instruction)
    print_categories(per_category, counts, "instructions run", ms_per_iteration)
    print(f"# the {args.top} costliest instructions outside the matmuls:")
    op_types = dict(re.findall(r'%(\S+) = [^\n]*?op_type="([^"]+)"', hlo))
    for picoseconds, name, category in sorted(per_instruction, reverse=True):
        if category == "matmuls":
            continue
        print(f"#   {ms_per_iteration(picoseconds):.3f} ms  {100 * picoseconds / total:4.1f}%  "
              f"{name} ({category}; from {op_types.get(name, 'XLA')})")
        args.top -= 1
        if args.top == 0:
            break


def print_categories(per_category, counts, counted, ms_per_iteration):
    total = sum(per_category.values())
    print(f"| category           | ms/iter | share  | {counted:>16} |")
    print("|--------------------|---------|--------|------------------|")
    for category in CATEGORIES:
        print(f"| {category:<18} | {ms_per_iteration(per_category[category]):>7.3f} | "
              f"{100 * per_category[category] / max(total, 1):>5.1f}% | "
              f"{counts[category]:>16} |")


def print_op_profile(header, durations, args):
    """The profile of a run without XLA: categories, then the costliest op types."""
    ms_per_iteration = lambda ps: ps / 1e9 / args.iterations  # noqa: E731
    per_category, counts = collections.Counter(), collections.Counter()
    per_type = collections.defaultdict(lambda: [0, 0])
    for (name, op_type), (picoseconds, runs) in durations.items():
        category = op_category(name, op_type)
        per_category[category] += picoseconds
        counts[category] += runs
        per_type[op_type][0] += picoseconds
        per_type[op_type][1] += runs
    total = sum(per_category.values())
    print(header)
    print(f"# time in TensorFlow ops (summed over the executor's threads): "
          f"{ms_per_iteration(total):.3f} ms per iteration")
    print_categories(per_category,
                     collections.Counter({c: n // args.iterations for c, n in counts.items()}),
                     "ops per iter", ms_per_iteration)
    print(f"# the {args.top} costliest op types:")
    for op_type, (picoseconds, runs) in sorted(per_type.items(), key=lambda item: -item[1][0]
                                               )[:args.top]:
        print(f"#   {ms_per_iteration(picoseconds):7.3f} ms  "
              f"{100 * picoseconds / total:4.1f}%  {op_type} "
              f"({runs / args.iterations:g} per iteration)")
    print(f"# the {args.top} costliest ops:")
    for (name, op_type), (picoseconds, runs) in sorted(durations.items(),
                                                       key=lambda item: -item[1][0])[:args.top]:
        print(f"#   {ms_per_iteration(picoseconds):7.3f} ms  "
              f"{100 * picoseconds / total:4.1f}%  "
              f"{name.rpartition('StatefulPartitionedCall/')[2]} ({op_type}, "
              f"{runs / args.iterations:g} per iteration)")


if __name__ == "__main__":
    main()
