"""Running a study elsewhere: one shell command per run (any scheduler), or a Slurm job array."""

import dataclasses
import os
import shlex

from gan.study.plan import PlannedRun


def run_commands(study_path, root, runs, python="python", extra_flags=()):
    """One shell command per run, each independent and resumable."""
    return [shlex.join([python, "-m", "gan.ablate", f"--study={study_path}", f"--root={root}",
                        f"--only={run.name}", *extra_flags]) for run in runs]


def slurm_script(study, root, runs, cpus_per_task=2, extra_flags=()):
    """A Slurm job-array script with one task per run; its last task's output names the command
    that collects the results."""
    commands = run_commands(os.path.abspath(study.path), os.path.abspath(root), runs,
                            extra_flags=extra_flags)
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name=gan-{study.name}",
        f"#SBATCH --array=0-{len(runs) - 1}",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        f"#SBATCH --output={os.path.abspath(root)}/slurm-%A_%a.out",
        "# One task per run of the study; every run is independent and resumes if resubmitted.",
        "# When all are done: python -m gan.ablate --study=... --root=... --report_only",
        "set -euo pipefail",
        f"cd {shlex.quote(os.getcwd())}",
        "commands=(",
        *[f"  {shlex.quote(command)}" for command in commands],
        ")",
        'eval "${commands[$SLURM_ARRAY_TASK_ID]}"',
    ]
    return "\n".join(lines) + "\n"


def with_placement(runs, **placement):
    """The runs with placement settings (strategy, cpu_replicas, tpu) replaced: they are not part
    of a run's identity, so a finished run stays finished."""
    placement = {name: value for name, value in placement.items() if value is not None}
    if not placement:
        return runs
    return [dataclasses.replace(run, config=run.config.replace(**placement))
            if isinstance(run, PlannedRun) else run for run in runs]
