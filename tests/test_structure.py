"""The package's shape: small modules and functions, imports that flow one way, and a library that
reads no flags."""

import ast
import glob
import os
import subprocess
import sys

from helpers import REPO

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
# The command lines, and the modules that bind the schema to absl flags: the only absl users.
ABSL_MODULES = {"gan.train", "gan.ablate", "gan.evaluate", "gan.sample", "gan.export",
                "gan.classifier", "gan.flag_reference", "gan.cli", "gan.schema", "gan.config",
                "gan.study.plan", "gan.compile_cache"}


def modules():
    """{module name: parsed source} of every module of the package."""
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "gan", "**", "*.py"), recursive=True)):
        name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        name = name[:-len(".__init__")] if name.endswith(".__init__") else name
        with open(path) as f:
            found[name] = (f.read(), path)
    return found


def gan_imports(source):
    """The package's modules that a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gan" or node.module == "gan.study":
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif node.module.startswith("gan."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("gan."))
    return found


def imported(source):
    """Every top-level package a module imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_is_longer_than_400_lines():
    long = {name: source.count("\n") for name, (source, _) in modules().items()
            if source.count("\n") > MAX_MODULE_LINES}
    assert not long


def test_no_function_is_longer_than_50_lines():
    long = []
    for name, (source, _) in modules().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long


def test_imports_form_no_circle():
    graph = {name: {m for m in gan_imports(source) if m != name}
             for name, (source, _) in modules().items()}
    assert "gan.step" in graph["gan.run"] and "gan.study.plan" in graph["gan.study.runner"]
    done, circles = set(), []

    def visit(name, path):
        if name in path:
            circles.append(path[path.index(name):] + [name])
            return
        if name in done:
            return
        for dependency in sorted(graph.get(name, ())):
            visit(dependency, path + [name])
        done.add(name)
    for name in sorted(graph):
        visit(name, [])
    assert not circles


def test_only_the_command_lines_and_the_schema_use_absl():
    users = {name for name, (source, _) in modules().items() if "absl" in imported(source)}
    assert users <= ABSL_MODULES, users - ABSL_MODULES
    assert "gan.run" not in users and "gan.step" not in users


def test_importing_the_entry_points_defines_no_flag():
    """A notebook may import gan.train or gan.ablate for their functions: the flags are defined
    only when the module runs as a program."""
    script = ("from absl import flags\nimport gan.train, gan.ablate, gan.run\n"
              "print(sorted(flags.FLAGS))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-2000:]
    defined = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 -- our own print
    assert "logdir" not in defined and "study" not in defined and "d_loss" not in defined


def test_the_training_command_lists_every_setting_in_its_help():
    """Its flags are defined in a function; --help still shows the run settings with gan.train's
    own (they are key flags of the program)."""
    from gan import config
    out = subprocess.run([sys.executable, "-m", "gan.train", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    listed = {line.split(":")[0].strip().lstrip("-").replace("[no]", "")
              for line in out.stdout.splitlines() if line.startswith("  --")}
    assert set(config.SETTINGS) | {"logdir", "restart", "xla_cache_dir"} <= listed
