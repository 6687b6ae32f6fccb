"""Writing files safely: whole or not at all, and only where the user can write."""

import os


def write_atomically(path, payload):
    """Writes bytes to path via a temporary file and a rename, so readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = f"{path}.tmp-{os.getpid()}"
    try:
        with open(partial, "wb") as f:
            f.write(payload)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def check_output_path(path, suffixes=(), flag="output"):
    """Creates the directory of an output file if needed; one line when that is impossible or
    the name lacks one of `suffixes`."""
    if suffixes and not path.endswith(tuple(suffixes)):
        return f"--{flag}={path}: expected a file name ending in {' or '.join(suffixes)}"
    if os.path.isdir(path):
        return f"--{flag}={path} is a directory; expected a file path"
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        return f"--{flag}={path}: cannot create its directory {directory}: {e.strerror or e}"
    if not os.access(directory, os.W_OK):
        return f"--{flag}={path}: its directory {directory} is not writable"
    return None


def check_output_dir(path, flag="output"):
    """Creates an output directory if needed and writes a probe file in it; one line when that
    fails."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"--{flag}={path} exists and is not a directory"
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as e:
        return f"--{flag}={path} is not writable: {e}"
    return None
