"""The machinery of the run schema: how a setting is declared, checked, shown and bound to an absl
flag. The settings themselves are declared in `gan.config`."""

import dataclasses
import numbers
from typing import Optional

from absl import flags

NET_OF_PREFIX = {"g_": "Generator", "d_": "Discriminator"}


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric range; None leaves a side open."""
    low: Optional[float] = None
    high: Optional[float] = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def contains(self, value):
        if self.low is not None and not (value >= self.low if self.low_inclusive
                                         else value > self.low):
            return False
        return self.high is None or (value <= self.high if self.high_inclusive
                                     else value < self.high)

    def describe(self, kind):
        if self.high is None:
            return f"{kind} {'>=' if self.low_inclusive else '>'} {_number(self.low)}"
        left, right = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
        return f"{kind} in {left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value):
    return str(value) if isinstance(value, int) else f"{value:g}"


AT_LEAST_1 = Range(1)
# Bounds on the values that become tensor shapes and RNG seeds: far beyond any run that fits in
# memory, so that a typo is one line rather than an allocation failure deep in TensorFlow.
MAX_WIDTH = 65536
SIZE = Range(1, MAX_WIDTH)
SEED = Range(0, 2 ** 63 - 1)  # TensorFlow's RNG seeds are int64
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_inclusive=False)
UNIT_CLOSED = Range(0, 1)
UNIT_HALF_OPEN = Range(0, 1, high_inclusive=False)
UNIT_OPEN = Range(0, 1, low_inclusive=False, high_inclusive=False)


def setting(default, help, *, choices=None, valid=None, structural=False, note=None, kind=None):
    """A field of the schema. `choices`: a tuple, or a registry (a dict, read when the choices are
    needed, so that an entry registered later is a valid choice); `valid` is a Range for
    numbers; `note` adds to the expectation printed when the value is invalid (e.g. "0 turns
    evaluation off"); `kind` is the value's type when the default (None) does not tell it."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "valid": valid, "structural": structural,
        "note": note, "kind": kind})


@dataclasses.dataclass(frozen=True)
class Setting:
    """One flat setting: its flag name, where it lives (its group, and the prefix of the group's
    flags), its declaration, and whether a run's identity (`to_flagfile(identity=True)`) names
    it when it has its default value (see `gan.config.IDENTITY_BASELINE`)."""
    name: str
    group: str
    field: dataclasses.Field
    prefix: str = ""
    in_identity_at_default: bool = False

    @property
    def help(self):
        text = self.field.metadata["help"]
        if not self.prefix:
            return text
        # "Adam beta1" -> "Generator adam beta1", but "SGD momentum" keeps its acronym.
        first = text[0] if text[1:2].isupper() else text[0].lower()
        return f"{NET_OF_PREFIX[self.prefix]} {first}{text[1:]}"

    @property
    def choices(self):
        """The valid values of a string setting (a registry's names, sorted), or None."""
        choices = self.field.metadata["choices"]
        if choices is None:
            return None
        return tuple(sorted(choices)) if isinstance(choices, dict) else tuple(choices)

    @property
    def structural(self):
        return self.field.metadata["structural"]

    @property
    def default(self):
        return self.field.default

    @property
    def kind(self):
        """bool, int, float, str or tuple (a list of positive integers), from the default."""
        default = self.field.default
        if self.field.metadata["kind"] is not None:
            return self.field.metadata["kind"]
        return str if default is None else type(default)


def display(value):
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def flagfile(flat):
    """{flag name: value} as flagfile lines (a None value is left out: the flag's default)."""
    lines = []
    for name, value in flat.items():
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        else:
            lines.append(f"--{name}={display(value)}")
    return "\n".join(lines) + "\n"


def check(setting_, value):
    """The expectation a value fails, or None when it is valid."""
    meta, kind = setting_.field.metadata, setting_.kind
    if kind is tuple:
        ok = (isinstance(value, (tuple, list)) and len(value) > 0
              and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH
                      for v in value))
        return None if ok else (f"a comma-separated list of integers in [1, {MAX_WIDTH}], e.g. "
                                "256,512")
    if kind is bool:
        return None if isinstance(value, bool) else "true or false"
    if kind is str:
        if value is None and setting_.default is None:
            return None
        if not isinstance(value, str):
            return "a string"
        if setting_.choices and value not in setting_.choices:
            return f"one of {', '.join(setting_.choices)}"
        return None
    if value is None and setting_.default is None:
        return None
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        return "an integer"
    if kind is float and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return "a number"
    valid = meta["valid"]
    if valid is not None and not valid.contains(value):
        expected = valid.describe("an integer" if kind is int else "a value")
        return f"{expected} ({meta['note']})" if meta["note"] else expected
    return None


def define_flags(settings, flag_values):
    """Defines one absl flag per Setting of {name: Setting} on `flag_values`."""
    for name, setting_ in settings.items():
        kind, default = setting_.kind, setting_.default
        common = dict(name=name, help=setting_.help, flag_values=flag_values)
        if kind is bool:
            flags.DEFINE_boolean(default=default, **common)
        elif kind is tuple:
            flags.DEFINE_list(default=[str(v) for v in default], **common)
        elif kind is int:
            flags.DEFINE_integer(default=default, **common)
        elif kind is float:
            flags.DEFINE_float(default=default, **common)
        elif setting_.choices:
            flags.DEFINE_enum(default=default, enum_values=list(setting_.choices), **common)
        else:
            flags.DEFINE_string(default=default, **common)


def parse_list(values):
    """A DEFINE_list value as a tuple of ints, or as the raw strings when one is not a number
    (validation then names the flag)."""
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        return tuple(values)


BOM = "\ufeff"


def stray_arguments(arguments):
    """The line for words of a command line or flagfile that are not flags (absl passes a
    flagfile's lines that do not start with a dash on as arguments)."""
    first = arguments[0]
    if first.startswith(BOM):
        return (f"{first[1:]!r} starts with a byte-order mark (U+FEFF), as a flagfile saved as "
                "'UTF-8 with BOM' does; expected the flagfile in plain UTF-8")
    shown = " ".join(repr(a) for a in arguments[:3]) + (" ..." if len(arguments) > 3 else "")
    return f"unexpected arguments: {shown} (flags are written --name=value, one per line)"


def flat_of_flags(settings, flag_values):
    """{name: value} of parsed flags, lists of integers as tuples."""
    flat = {}
    for name, setting_ in settings.items():
        value = flag_values[name].value
        flat[name] = parse_list(value) if setting_.kind is tuple else value
    return flat


def read_flagfile(path, settings, error):
    """{name: value} of a flagfile, parsed as gan.train parses it; `error` (a ConfigError) for
    a line that is not a flag."""
    flag_values = flags.FlagValues()
    define_flags(settings, flag_values)
    remaining = flag_values(["gan", f"--flagfile={path}"])
    if len(remaining) > 1:  # as gan.train refuses them
        raise error([f"{path}: {stray_arguments(remaining[1:])}"])
    return flat_of_flags(settings, flag_values)
