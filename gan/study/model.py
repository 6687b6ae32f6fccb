"""A study and its planned runs as data: what `gan.study.plan` makes of a study file, for every
stage after it (defined apart from the planning, so that the stages it uses can name them)."""

import dataclasses

from gan import config as config_lib
from gan.study import sections
from gan.study import winners as winners_lib


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str
    # (label, {flag: value}) per choice; a flag axis has one flag per choice, named by the axis.
    choices: tuple
    is_flag: bool
    # (label, Params) per choice that tunes flags of its own arm ({log_uniform = [...]} values).
    spaces: tuple = ()
    # (label, WinnerOf) per choice that takes another study's tuned winner.
    winners: tuple = ()

    def hparam_value(self, label):
        """The value TensorBoard's HParams dashboard shows: the flag's own value for a flag axis
        (numbers stay numbers, so they sort), the variant's name otherwise."""
        if self.is_flag:
            value = dict(self.choices)[label][self.name]
            if isinstance(value, (bool, int, float, str)):
                return value
        return label


@dataclasses.dataclass(frozen=True)
class Study:
    path: str
    name: str
    description: str
    base: str
    seeds: tuple
    settings: dict
    axes: tuple
    references: tuple = ()  # (name, command template)
    curves: tuple = ()  # more scalar tags to plot like FID ([report] curves)
    curve_max_step: int = 0  # 0: the whole run
    findings: str = ""  # the researcher's reading of the results ([report] findings), markdown
    analysis: sections.Analysis = None  # the declared comparisons ([analysis]); None: the defaults
    tune: sections.Tune = None  # a tuning budget per arm ([tune]); None: the settings as given
    # Where the records and the results go (`output`, relative to the study file); "": the root.
    output: str = ""
    winner_of: winners_lib.WinnerOf = None  # [settings] winner_of: every run takes it


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    name: str  # its directory under the root
    config_name: str  # the same without the seed: the row of the results table
    choices: tuple  # (axis name, label) per axis
    seed: int
    config: config_lib.RunConfig
    hparams: tuple = ()  # (axis name, the value TensorBoard's HParams dashboard shows) per axis
    space: tuple = ()  # the Params its axis variants tune for this arm alone, beside [tune.space]


@dataclasses.dataclass(frozen=True)
class PlannedReference:
    """One seed of an outside implementation: its command writes samples that gan.evaluate
    scores."""
    name: str
    config_name: str
    seed: int
    command: str  # with {seed} and {samples} filled in
    dataset: str
    choices: tuple = ()
    hparams: tuple = ()
