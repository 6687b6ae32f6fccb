"""The documents a user reads: the flag reference is the schema's, and every link resolves."""

import os
import re

from gan import flag_reference
from helpers import REPO, run_module

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_flag_reference_is_made_from_the_schema():
    """docs/flags.md is what `python -m gan.flag_reference` makes: regenerate it with
    `python -m gan.flag_reference --output=docs/flags.md` after changing a setting."""
    with open(os.path.join(REPO, "docs", "flags.md")) as f:
        committed = f.read()
    assert committed == flag_reference.markdown(), (
        "docs/flags.md is stale: run python -m gan.flag_reference --output=docs/flags.md")
    # Every flag gan.train defines has its row.
    for name in [*flag_reference.config.SETTINGS,
                 *(n for n, _, _ in flag_reference.train_only_flags())]:
        assert f"`--{name}`" in committed, name


def test_the_reference_is_written_by_its_command(tmp_path):
    out = tmp_path / "flags.md"
    result = run_module("gan.flag_reference", f"--output={out}")
    assert result.stderr == "" and out.read_text() == flag_reference.markdown()


def test_readme_is_short_and_every_relative_link_resolves():
    with open(os.path.join(REPO, "README.md")) as f:
        assert len(f.read().splitlines()) <= 300
    documents = ["README.md", "BUILD.md"] + [os.path.join("docs", name) for name in
                                             os.listdir(os.path.join(REPO, "docs"))
                                             if name.endswith(".md")]
    for document in documents:
        with open(os.path.join(REPO, document)) as f:
            text = f.read()
        for target in LINK.findall(text):
            if "://" in target:
                continue
            path = os.path.normpath(os.path.join(REPO, os.path.dirname(document), target))
            assert os.path.exists(path), (document, target)
