"""The machine a run trains on, as the records that compare runs name it."""

import platform

# The CPU features that change a run's numbers (the kernels XLA and oneDNN pick).
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def cpu():
    """(the CPU's model name, its feature flags), from /proc/cpuinfo where there is one."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, flags


def describe():
    """Where runs train, as one line: the CPU model and its ISA flags of note, and TensorFlow's
    version. Runs from two machines differ beyond their seeds, so a study keeps it per run."""
    import tensorflow as tf
    model, flags = cpu()
    isa = [flag for flag in ISA_FLAGS if flag in flags]
    return f"{model} [{' '.join(isa) or 'no ISA flags of note'}] TensorFlow {tf.__version__}"
