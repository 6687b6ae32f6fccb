"""docs/flags.md, the reference of `python -m gan.train`'s flags, made from the run schema
(`gan.config`) and gan.train's own flags, so that it cannot drift from the code:

    python -m gan.flag_reference --output=docs/flags.md

`tests/test_docs.py` fails when the committed file differs from what this makes.
"""

import os

from absl import flags

from gan import cli, compile_cache, config, files, train

PROGRAM = "gan.flag_reference"
HEADINGS = {
    "data": "Data",
    "model": "Model",
    "game": "Losses, penalties and the D/G schedule",
    "g_opt": "Optimizers: G's and D's",
    "schedule": "Schedule",
    "output": "Outputs and evaluation",
    "runtime": "Runtime",
}


def _cell(text):
    # "<logdir>" would read as an HTML tag.
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _default(setting):
    value = setting.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{value}`"


def _valid(setting):
    meta, kind = setting.field.metadata, setting.kind
    if setting.choices:
        return ", ".join(f"`{c}`" for c in setting.choices)
    if kind is tuple:
        return f"integers in [1, {config.MAX_WIDTH}]"
    if kind is bool:
        return "true, false"
    if meta["valid"] is not None:
        described = meta["valid"].describe("integer" if kind is int else "")
        return described.strip() + (f" ({meta['note']})" if meta["note"] else "")
    return {int: "integer", float: "number", str: "text"}[kind]


def _rows(settings, twin=None):
    """A row per setting; with `twin` ("d_"), an optimizer's g_ row names its d_ twin too and
    gives the help both share."""
    yield "| flag | default | valid | structural | meaning |"
    yield "| --- | --- | --- | :---: | --- |"
    for s in settings:
        names = f"`--{s.name}`"
        help_text = s.help
        if twin:
            names += f", `--{twin}{s.field.name}`"
            help_text = s.field.metadata["help"]
        yield (f"| {names} | {_cell(_default(s))} | {_cell(_valid(s))} | "
               f"{'yes' if s.structural else ''} | {_cell(help_text)} |")


def train_only_flags():
    """gan.train's flags that are not settings of the schema (where the run lives, how it
    starts), as (name, default, help)."""
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    ours = flag_values.get_flags_for_module(train)
    return [(f.name, f.default, f.help) for f in sorted(ours, key=lambda f: f.name)
            if f.name not in config.SETTINGS]


def markdown():
    lines = [
        "# Flags of `python -m gan.train`",
        "",
        "Made by `python -m gan.flag_reference --output=docs/flags.md` from the run schema "
        "(`gan/config.py`); do not edit by hand. `python -m gan.train --helpfull` prints the same "
        "help. A *structural* setting fixes the checkpoint's variables: a run resumes only with "
        "the value it was started with (`--restart` starts over). The others may change on "
        "resume.",
        "",
    ]
    for group, heading in HEADINGS.items():
        prefix = config.GROUPS[group][1]
        settings = [s for s in config.SETTINGS.values()
                    if s.group == group and (not prefix or s.name.startswith(prefix))]
        twin = config.GROUPS["d_opt"][1] if group == "g_opt" else None
        lines += [f"## {heading}", "", *_rows(settings, twin), ""]
    lines += ["## The run's directory and start-up", "", "| flag | default | meaning |",
              "| --- | --- | --- |"]
    for name, default, help_text in train_only_flags():
        shown = ("none" if default is None else str(default).lower() if isinstance(default, bool)
                 else f"`{default}`")
        if default == compile_cache.DEFAULT_DIR:  # the same on every machine, spelled as such
            shown = "`~/.cache/gan/xla` (`$XDG_CACHE_HOME/gan/xla` where that is set)"
        lines.append(f"| `--{name}` | {_cell(shown)} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


flags.DEFINE_string("output", None, "Where to write the markdown (default: stdout).")


def main(argv):
    del argv
    text = markdown()
    output = flags.FLAGS.output
    if not output:
        print(text, end="")
        return
    error = files.check_output_path(output, (".md",))
    if error:
        cli.fail(PROGRAM, [error])
    with open(output, "w") as f:
        f.write(text)
    print(f"wrote {os.path.abspath(output)}")


if __name__ == "__main__":
    cli.run(main, PROGRAM)
