"""`winner_of`: an arm, or every run, of a study takes the winning settings of another study's
tuned arm. The declaration is read here with the study file; `gan.study.plan` resolves it from the
tuned study's committed records/tuning.json (`gan.study.summary`) and checks it with `check`."""

import dataclasses
import os

from gan.errors import StudyError


@dataclasses.dataclass(frozen=True)
class WinnerOf:
    """`winner_of = { study = "...", arm = "..." }`: the winning settings of another study's
    tuned arm, read from its committed records/tuning.json, so that an arm tuned once is not
    copied by hand (or tuned again) wherever it is the starting point."""
    study: str  # the tuned study's file, absolute
    arm: str  # its configuration, say "loss=non_saturating"
    where: str  # the table that declares it, for error messages
    excluded: tuple = ()  # flags of the winner not taken ("except"): the study sets them


WINNER_OF = "winner_of"


def declared(path, where, table):
    """(the table without its winner_of key, the WinnerOf it declares or None)."""
    if WINNER_OF not in table:
        return table, None
    table = dict(table)
    spec = table.pop(WINNER_OF)
    expected = (f'expected {WINNER_OF} = {{ study = "<study file>", arm = "<axis>=<label>" }}'
                ' (another study\'s tuned arm, optionally with except = ["<flag>", ...])')
    keys = set(spec) if isinstance(spec, dict) else set()
    if (not {"study", "arm"} <= keys <= {"study", "arm", "except"}
            or not all(isinstance(spec[k], str) and spec[k] for k in ("study", "arm"))):
        raise StudyError(f"{path}: {where} {WINNER_OF}: {expected}, found {spec!r:.80}")
    excluded = spec.get("except", [])
    if not isinstance(excluded, list) or not all(isinstance(f, str) for f in excluded):
        raise StudyError(f"{path}: {where} {WINNER_OF}: 'except' must be a list of flag names, "
                         f"found {excluded!r:.60}")
    study = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), spec["study"]))
    return table, WinnerOf(study, spec["arm"], where, tuple(excluded))


def _axis_flags(axis, label=None):
    """The flags an axis sets and tunes: one variant's, or (label None) all its variants'."""
    return ({name for l, values in axis.choices if label in (None, l) for name in values}
            | {p.name for l, space in axis.spaces if label in (None, l) for p in space})


def check(study, winner, axis_winners):
    """A winner's flag is set by the winner alone: another value for it would silently win, and
    a run said to train the winner would train something else."""
    shared = [("[settings]", set(study.settings)),
              ("[tune.space]", {p.name for p in study.tune.space} if study.tune else set())]
    axes = {axis.name: axis for axis in study.axes}
    declared = [(ref.where + " " + WINNER_OF, name, set(flags_))
                for (name, _), (ref, flags_) in axis_winners.items()]
    checks = []
    if study.winner_of:
        checks.append((f"[settings] {WINNER_OF}", winner, shared + [
            (f"axis {name!r}", _axis_flags(axis)) for name, axis in axes.items()] + [
            (where, flags_) for where, _, flags_ in declared]))
    for (name, label), (ref, flags_) in axis_winners.items():
        checks.append((f"{ref.where} {WINNER_OF}", flags_, shared + [
            (ref.where, _axis_flags(axes[name], label))] + [
            (f"axis {other!r}", _axis_flags(axis)) for other, axis in axes.items()
            if other != name] + [
            (where, other_flags) for where, other, other_flags in declared if other != name]))
    for where, flags_, owners in checks:
        for owner, names in owners:
            both = sorted(set(flags_) & names)
            if both:
                raise StudyError(f"{study.path}: --{both[0]} is set by both {where} and {owner}; "
                                 "expected each flag in one place (leave it to the winner, or "
                                 "list it in the winner's except = [...])")
