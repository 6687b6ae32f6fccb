"""A tuning budget per arm ([tune]): Optuna trials of each configuration, pruned by successive
halving, before the winner of each is trained on the study's own seeds.

Each configuration (arm) is an Optuna study in one storage: by default a SQLite file in the
study's root, or any database Optuna supports (`gan.ablate --storage=URL`), which lets
`gan.ablate --worker` processes on many machines share the trials. A trial is `gan.train` runs
of the arm with the sampled settings, one per tuning seed, in
`<root>/tune/<arm>/trial=<n>,seed=<s>/`: trained to each rung's budget in turn, evaluated there
(FID on the tuning samples, averaged over the seeds) and reported to the pruner, which stops
all but the best 1/reduction_factor; a pruned trial keeps its checkpoint. A worker killed
mid-trial stops sending Optuna's heartbeat: after the grace period the trial is marked failed and
enqueued again with the same settings, and its retry resumes the runs from their checkpoints
(trials that finished are untouched). Each trial's runs leave records like the study's own runs,
and `records/tuning.json` keeps every arm's trials and winner, so that the report, and a study
continued on another machine, need neither the storage nor the run directories.
"""

import dataclasses
import hashlib
import json
import math
import os
import time
import warnings

from gan import files
from gan.errors import MissingPackage, StudyError
from gan.study import records
from gan.study.plan import PlannedRun
from gan.study.summary import SUMMARY, arm_key, arms

TRIALS = records.TRIALS
MAX_RETRIES = 3  # a trial whose worker died is retried this often


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingPackage("a study with [tune] needs Optuna: pip install -e \".[study]\"") \
            from None
    # The runner prints a line for every trial, with why a failed one failed; Optuna's own
    # warning for a failed trial carries the exception's traceback, even for a trial stopped
    # by a signal and retried on the next run.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _retry(optuna):
    """Optuna's callback that enqueues a failed trial again (renamed in Optuna 4.9)."""
    return getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                   getattr(optuna.storages, "RetryFailedTrialCallback", None))


def storage_url(root, url=None):
    """The tuning storage: `url`, or the SQLite file <root>/tune.db."""
    return url or "sqlite:///" + os.path.abspath(os.path.join(root, "tune.db"))


def open_storage(url, heartbeat_seconds=60):
    """Optuna's RDB storage at `url`, with heartbeats: a trial whose worker sent none for twice
    `heartbeat_seconds` is failed and enqueued again (at most MAX_RETRIES times)."""
    optuna = _optuna()
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=heartbeat_seconds,
                grace_period=2 * heartbeat_seconds,
                heartbeat_stale_trial_callback=_retry(optuna)(max_retry=MAX_RETRIES))
        except Exception as e:  # SQLAlchemy's errors: a bad URL, a missing driver, no server
            # Workers started together race to create the tables: the loser finds them made.
            # (SQLite reports the lost race as a table that exists, or as Alembic's version
            # row inserted twice.)
            raced = "already exists" in str(e) or "UNIQUE constraint failed: alembic" in str(e)
            if attempt == 2 or not raced:
                raise StudyError(f"--storage={url}: cannot be opened: "
                                 f"{str(e).splitlines()[0][:200]}") from None
            time.sleep(1)


def suggest(trial, param):
    low, high = (param.values + (None, None))[:2]
    if param.kind == "log_uniform":
        return trial.suggest_float(param.name, low, high, log=True)
    if param.kind == "uniform":
        return trial.suggest_float(param.name, low, high)
    if param.kind == "int":
        return trial.suggest_int(param.name, low, high)
    return trial.suggest_categorical(param.name, list(param.values))


def trial_run(study, arm_run, number, seed, params, budget):
    """One tuning seed of a trial as a PlannedRun, trained to `budget` steps and evaluated
    there on the tuning samples."""
    tune = study.tune
    config = arm_run.config.replace(
        **params, seed=seed, num_steps=budget, eval_every=budget,
        eval_num_samples=tune.eval_num_samples).validate()
    name = f"{TRIALS}/{arm_run.config_name}/trial={number},seed={seed}"
    return PlannedRun(name, arm_run.config_name, arm_run.choices, seed, config, arm_run.hparams)


def _fid_at(records_dir, run, step):
    record = records.read(records_dir, run)
    curve = dict(map(tuple, record.get("curves", {}).get("eval/fid", []))) if record else {}
    return curve.get(step)


class Interrupted(Exception):
    """The runner was asked to stop: the trial is left to be retried."""


def objective(study, runner, arm_run):
    """The Optuna objective of an arm: the mean tuning FID at the trial's last budget (inf for
    a trial whose training diverged)."""
    optuna = _optuna()
    rungs = study.tune.rungs(arm_run.config.schedule.num_steps)

    def run_trial(trial):
        frozen = next(t for t in trial.study.get_trials(deepcopy=False)
                      if t.number == trial.number)
        number = _retry(optuna).retried_trial_number(frozen)
        number = trial.number if number is None else number
        trial.set_user_attr("runs_of_trial", number)
        # A retry is enqueued with the failed trial's attributes: they describe that attempt.
        for attr in ("interrupted", "diverged", "crashed"):
            trial.set_user_attr(attr, "")
        params = {p.name: suggest(trial, p) for p in study.tune.space + arm_run.space}
        value = math.inf
        for budget in rungs:
            fids = []
            for seed in study.tune.seeds:
                run = trial_run(study, arm_run, number, seed, params, budget)
                status = runner.run_one(run)
                if runner.stopping or status["status"] in ("interrupted", "busy"):
                    trial.set_user_attr("interrupted", True)
                    raise Interrupted(run.name)
                if status["status"] == "diverged":
                    trial.set_user_attr("diverged", f"{run.name}: {status.get('reason', '')}")
                    return math.inf
                fid = _fid_at(runner.records_dir, run, budget)
                if status["status"] != "done" or fid is None:
                    trial.set_user_attr("crashed", f"{run.name}: {status.get('reason', '')}")
                    raise StudyError(f"{run.name}: {status['status']}: "
                                     f"{status.get('reason', 'no FID at its budget')}")
                fids.append(fid)
            value = sum(fids) / len(fids)
            trial.report(value, budget)
            if budget != rungs[-1] and trial.should_prune():
                raise optuna.TrialPruned()
        return value
    return run_trial


def sampler_seed(study, arm, trial_number):
    """The seed of the sampler that draws a trial's settings: the declared seed, the arm and the
    trial's number, so that workers draw different settings, reproducibly."""
    text = f"{study.tune.sampler_seed}:{arm}:{trial_number}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def optuna_study(study, storage, arm_run, trial_number=None):
    """The arm's Optuna study, with the declared pruner and the declared sampler (seeded for
    the trial `trial_number` when given)."""
    optuna = _optuna()
    tune = study.tune
    seed = None if trial_number is None else sampler_seed(study, arm_run.config_name,
                                                          trial_number)
    sampler = (optuna.samplers.RandomSampler(seed=seed) if tune.sampler == "random" else
               optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, tune.trials // 3)))
    budget = tune.budget(arm_run.config.schedule.num_steps)
    if tune.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=tune.min_steps or budget,
                                                max_resource=budget,
                                                reduction_factor=tune.reduction_factor)
    else:
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=tune.min_steps or budget, reduction_factor=tune.reduction_factor)
    return optuna.create_study(storage=storage, study_name=arm_key(study, arm_run),
                               direction="minimize", sampler=sampler, pruner=pruner,
                               load_if_exists=True)


def _counts(trials):
    counts = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def tune_arm(study, runner, storage, arm_run, echo):
    """Runs this worker's share of an arm's trials; returns True when the arm's tuning is
    complete (its declared trials finished, by any worker)."""
    optuna = _optuna()
    while not runner.stopping:
        probe = optuna_study(study, storage, arm_run)
        optuna.storages.fail_stale_trials(probe)  # a dead worker's trial: failed, enqueued again
        trials = probe.get_trials(deepcopy=False)
        counts = _counts(trials)
        finished = (counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
                    + sum(1 for t in trials if t.user_attrs.get("crashed")))
        if finished >= study.tune.trials:
            return True
        if finished + counts.get("RUNNING", 0) >= study.tune.trials and not counts.get("WAITING"):
            return False  # the rest are another worker's
        seeded = optuna_study(study, storage, arm_run, trial_number=len(trials))
        start, ran, run_trial = time.time(), [], objective(study, runner, arm_run)

        def counted(trial):
            ran.append(trial.number)
            trial.set_user_attr("sampler_seed", sampler_seed(study, arm_run.config_name,
                                                             len(trials)))
            return run_trial(trial)
        seeded.optimize(counted, n_trials=1, catch=(StudyError, Interrupted))
        last = next(t for t in seeded.get_trials(deepcopy=False) if t.number == ran[-1])
        why = ""
        if last.user_attrs.get("interrupted"):  # stopped by a signal: tried again on a rerun
            _retry(optuna)(max_retry=MAX_RETRIES)(seeded, last)
            why = ": interrupted, tried again on a rerun"
        elif last.state.name == "FAIL" and last.user_attrs.get("crashed"):
            why = f": {last.user_attrs['crashed']}"
        echo(f"tune {arm_run.config_name}: trial {last.number} {last.state.name.lower()}"
             + (f", FID {last.value:.2f}" if last.value is not None else "")
             + f"{why} in {time.time() - start:.0f} s")
    return False


def tune(study, runner, storage, runs, echo, wait=True, poll_seconds=5):
    """Tunes every arm (this worker's share); with `wait`, waits for other workers' trials to
    finish (looking again every `poll_seconds`: a dead worker's trial is retried then). Returns
    {arm: winning settings} once every arm is tuned, else None."""
    arm_runs = arms(study, runs)
    while True:
        done = [tune_arm(study, runner, storage, run, echo) for run in arm_runs.values()]
        if all(done):
            return write_summary(study, runner.records_dir, storage, arm_runs)
        if not wait or runner.stopping:
            return None
        time.sleep(poll_seconds)


def _trial_summary(trial):
    return {"number": trial.number, "state": trial.state.name.lower(),
            "runs_of_trial": trial.user_attrs.get("runs_of_trial", trial.number),
            "params": trial.params, "value": trial.value,
            "sampler_seed": trial.user_attrs.get("sampler_seed"),
            "intermediate": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
            "diverged": trial.user_attrs.get("diverged", ""),
            "crashed": trial.user_attrs.get("crashed", "")}


def write_summary(study, records_dir, storage, arm_runs):
    """Writes records/tuning.json (every arm's trials and winner); returns {arm: settings}."""
    optuna = _optuna()
    summary = {"format": 1, "sampler": study.tune.sampler, "sampler_seed": study.tune.sampler_seed,
               "order": list(arm_runs), "arms": {}}
    for arm, run in arm_runs.items():
        arm_study = optuna_study(study, storage, run)
        trials = arm_study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise StudyError(f"{study.path}: [tune]: no trial of {arm} completed (see "
                             f"{os.path.join(records_dir, SUMMARY)}); widen the search space "
                             "or check the trials' train.log")
        best = min(complete, key=lambda t: t.value)
        summary["arms"][arm] = {"key": arm_key(study, run), "winner": best.params,
                                "winner_trial": best.number, "winner_value": best.value,
                                "trials": [_trial_summary(t) for t in trials]}
    os.makedirs(records_dir, exist_ok=True)
    files.write_atomically(os.path.join(records_dir, SUMMARY),
                           (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    return {arm: entry["winner"] for arm, entry in summary["arms"].items()}


def apply(runs, winning):
    """The study's runs with each arm's winning settings."""
    tuned = []
    for run in runs:
        params = winning.get(run.config_name) if isinstance(run, PlannedRun) else None
        if params:
            run = dataclasses.replace(run, config=run.config.replace(**params).validate())
        tuned.append(run)
    return tuned


def summary_lines(study, summary, runs):
    """results.md's tuning section: per arm, its trials and its winner."""
    tune = study.tune
    num_steps = next(run.config.schedule.num_steps for run in arms(study, runs).values())
    space = _describe(tune.space)
    own = "; ".join(f"[axes.{axis.name}.{label}] {_describe(params)}"
                    for axis in study.axes for label, params in axis.spaces)
    if own:
        # A study whose arms each declare their whole space shares none: say only theirs.
        space += f"; and each arm's own: {own}" if space else f"each arm's own: {own}"
    lines = [f"Each configuration was tuned on its own budget of {tune.trials} trials "
             f"(Optuna, {tune.sampler} sampler, seed {tune.sampler_seed}, "
             f"{tune.pruner.replace('_', ' ')} pruner) over: {space}. A trial "
             f"trains on the tuning seeds {', '.join(map(str, tune.seeds))} (not the final "
             f"runs' seeds) and scores the mean FID on {tune.eval_num_samples} samples; it is "
             f"evaluated at {', '.join(map(str, tune.rungs(num_steps)))} steps, and only the "
             f"best 1/{tune.reduction_factor} at a rung go on. The winner (best "
             "FID at the full budget) is then trained on the study's seeds. Best FID against "
             "trials: `tuning.png`.", "",
             "| configuration | trials | complete / pruned | failed (retried or replaced) | "
             "best tuning FID | winner |", "| --- | --- | --- | --- | --- | --- |"]
    untuned = [name for name in dict.fromkeys(run.config_name for run in runs
                                              if isinstance(run, PlannedRun))
               if name not in summary["arms"]]
    if untuned:
        lines[0] += (" Trained as declared, with nothing to tune: "
                     + ", ".join(f"`{name}`" for name in untuned) + ".")
    for arm in summary["order"]:
        entry = summary["arms"][arm]
        states = [t["state"] for t in entry["trials"]]
        params = ", ".join(f"{k}={short(v)}" for k, v in sorted(entry["winner"].items()))
        finished = states.count("complete") + states.count("pruned")
        lines.append(f"| `{arm}` | {finished} | {states.count('complete')} / "
                     f"{states.count('pruned')} | {states.count('fail')} | "
                     f"{entry['winner_value']:.2f} (trial {entry['winner_trial']}) | {params} |")
    return lines


def _describe(params):
    return "; ".join(f"{p.name} {p.kind.replace('_', '-')} {list(p.values)}" for p in params)


def short(value):
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def traces(summary):
    """{arm: [(trial number, the best full-budget FID of the trials so far)]}."""
    result = {}
    for arm, entry in summary["arms"].items():
        best, points = math.inf, []
        for trial in sorted(entry["trials"], key=lambda t: t["number"]):
            if trial["state"] == "complete" and trial["value"] is not None:
                best = min(best, trial["value"])
            if math.isfinite(best):
                points.append((trial["number"], best))
        result[arm] = points
    return result
