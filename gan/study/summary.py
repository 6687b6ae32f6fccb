"""A tuned study's summary, records/tuning.json: which configurations it tunes (its arms), the
key of each arm's current settings, and each arm's winner. Read by the tuning, the report and by
the studies that take a winner of another (`winner_of`)."""

import dataclasses
import hashlib
import json
import os

from gan.study.model import PlannedRun

RECORDS = "records"  # a study's records folder, in its output folder (or root)
SUMMARY = "tuning.json"  # in the records folder


def arms(study, runs):
    """{arm: its run at the study's first seed}: the configurations that are tuned (those with a
    flag to tune: an arm of an axis variant that tunes nothing, with no [tune.space], is a
    control trained as declared)."""
    return {run.config_name: run for run in runs
            if isinstance(run, PlannedRun) and run.seed == study.seeds[0]
            and study.tune.space + run.space}


def arm_key(study, arm_run):
    """The Optuna study's name of an arm: the study, the arm and a digest of the arm's settings
    and the [tune] section, so that editing either starts the tuning afresh."""
    text = (arm_run.config.replace(seed=0).to_flagfile(identity=True)
            + repr(dataclasses.astuple(study.tune)) + (repr(arm_run.space) if arm_run.space
                                                       else ""))
    return f"{study.name}:{arm_run.config_name}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def read_summary(study, records_dir, runs):
    """records/tuning.json when it holds every arm of the study's current settings; else None."""
    try:
        with open(os.path.join(records_dir, SUMMARY)) as f:
            summary = json.load(f)
        entries = summary["arms"]
        arm_runs = arms(study, runs)
        if all(entries[arm]["key"] == arm_key(study, run) for arm, run in arm_runs.items()):
            return summary
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    return None


def winners(summary):
    return {arm: entry["winner"] for arm, entry in summary["arms"].items()}
