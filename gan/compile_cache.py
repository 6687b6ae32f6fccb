"""TensorFlow's persistent XLA cache, for `python -m gan.train`: a run whose training loop was
compiled before on this machine loads the compiled loop from disk instead of compiling it again
(seconds of every start-up: every seed of a sweep after the first, and every resumed run, skip
it).

TensorFlow keys a cached executable by its graph and HLO, not by what else decides the machine
code, so the file-name prefix set here adds that: TensorFlow's version, the CPU's model and
instruction-set flags, the number of cores (XLA splits its loops by it) and XLA_FLAGS. A home
directory shared by an AVX-512 and an AVX2 machine then keeps one entry for each. TensorFlow
writes an entry to a temporary file and renames it into place, so parallel runs share the
directory safely. Entries are about 2 MB each and are never evicted: delete the directory to
clear it.
"""

import hashlib
import os
import platform

import tensorflow as tf

from gan import data, files

DEFAULT_DIR = os.path.join(data.DEFAULT_CACHE_DIR, "xla")
TF_FLAGS_VARIABLE = "TF_XLA_FLAGS"


def _cpu_description():
    """The CPU's model name and flags (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f.read().splitlines()
                     if line.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def fingerprint():
    """What decides a compiled loop's machine code besides its graph, as a short hash."""
    parts = [tf.__version__, _cpu_description(), str(os.cpu_count()),
             os.environ.get("XLA_FLAGS", "")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def enable(directory):
    """Turns the cache on in `directory` (gan.train's --xla_cache_dir) for this process, if
    TensorFlow has not read its XLA flags yet: it reads them once, when it first lists devices
    or compiles. Returns None when on, else why not: a directory that cannot be written
    (TensorFlow would then fail the compile itself), a path with a space, or a cache the
    environment already sets (left as it is)."""
    existing = os.environ.get(TF_FLAGS_VARIABLE, "")
    if "tf_xla_persistent_cache" in existing:
        return f"{TF_FLAGS_VARIABLE} already sets a persistent cache ({existing.strip()})"
    if any(c.isspace() for c in directory):
        return (f"--xla_cache_dir={directory!r} holds a space, which {TF_FLAGS_VARIABLE} "
                "cannot carry")
    unwritable = files.check_output_dir(directory, flag="xla_cache_dir")
    if unwritable:
        return unwritable
    os.environ[TF_FLAGS_VARIABLE] = " ".join(filter(None, [
        existing.strip(), f"--tf_xla_persistent_cache_directory={directory}",
        f"--tf_xla_persistent_cache_prefix=gan_{fingerprint()}"]))
    return None
