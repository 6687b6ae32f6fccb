"""The run digests of the shipped studies are frozen: a study relaunches a finished run only when
its settings really changed.

tests/data/study_digests.json holds {study file: {run name: digest}} of every planned run of
experiments/ablations/*.toml, as computed when digests began to be guarded. Adding a setting,
penalty weights included, with its default must leave every one of them as it is."""

import dataclasses
import glob
import json
import os

import pytest

from gan import config, penalties
from gan.study import plan as plan_lib
from helpers import REPO

GOLDEN = os.path.join(REPO, "tests", "data", "study_digests.json")


def study_digests():
    result = {}
    for path in sorted(glob.glob(os.path.join(REPO, "experiments", "ablations", "*.toml"))):
        runs = plan_lib.plan(plan_lib.load_study(path))
        result[os.path.basename(path)] = {run.name: plan_lib.run_digest(run) for run in runs}
    return result


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # study files name their base flagfile from the repository's root


def assert_golden(digests):
    with open(GOLDEN) as f:
        golden = json.load(f)
    assert sorted(digests) == sorted(golden)
    for study, runs in golden.items():
        assert digests[study] == runs, study


def test_the_shipped_studies_keep_their_run_digests(in_repo):
    digests = study_digests()
    assert sum(len(runs) for runs in digests.values()) >= 100
    assert_golden(digests)


def with_test_setting(monkeypatch, group, name, field):
    """The schema with one more setting in `group`, as a new field in its dataclass would give."""
    cls, prefix = config.GROUPS[group]
    extended = dataclasses.make_dataclass(cls.__name__, [(name, type(field.default), field)],
                                          bases=(cls,), frozen=True)
    monkeypatch.setitem(config.GROUPS, group, (extended, prefix))
    monkeypatch.setattr(config, "SETTINGS", config._settings())


def test_a_new_setting_at_its_default_changes_no_digest(in_repo, monkeypatch):
    with_test_setting(monkeypatch, "runtime", "test_only_setting",
                      config.setting(7, "A setting that exists only in this test."))
    with_test_setting(monkeypatch, "game", "test_only_penalty_weight",
                      config.setting(0.0, "A new penalty's weight, off.",
                                     valid=config.NON_NEGATIVE))
    assert config.RunConfig.from_flat({}).to_flat()["test_only_setting"] == 7
    assert_golden(study_digests())
    # ...while the same setting set to another value is part of the run's identity.
    changed = config.RunConfig.from_flat({"test_only_setting": 8})
    assert "--test_only_setting=8" in changed.to_flagfile(identity=True)
    assert "test_only_setting" not in config.RunConfig.from_flat({}).to_flagfile(identity=True)


def test_a_new_penalty_registered_before_the_schema_changes_no_digest(in_repo, monkeypatch):
    """A penalty added to penalties.PENALTIES gets its --<name>_weight field when gan.config is
    built; left at 0 it is not part of any run's identity."""
    name = "test_only"
    monkeypatch.setitem(penalties.PENALTIES, name, penalties.Penalty(
        lambda d, real, fake, rng: 0.0 * d(real, training=True)[0], False, "A test penalty."))
    field = config._penalty_weight_fields()[-1]
    assert field[0] == f"{name}_weight"
    with_test_setting(monkeypatch, "game", field[0], field[2])
    assert_golden(study_digests())


def test_placement_settings_never_enter_the_identity():
    base = config.RunConfig()
    moved = base.replace(strategy="mirrored", cpu_replicas=2)
    assert moved.to_flagfile(identity=True) == base.to_flagfile(identity=True)
    assert moved.to_flagfile() != base.to_flagfile()
