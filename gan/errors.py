"""The exceptions that report a user's mistake, each with a message that names the flag or file,
what was expected and what was found. The entry points print such a message as one line (see
`gan.cli`); library callers catch them by type. Nothing here imports the rest of the package, so
every module can raise them."""


class UserError(ValueError):
    """A mistake in what the user gave: a setting, a file, a directory."""


class ConfigError(UserError):
    """Invalid settings; `lines` holds one message per problem, each naming its flag."""

    def __init__(self, lines):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class DataError(UserError):
    """A dataset that is missing, damaged or not what a run needs."""


class RunError(UserError):
    """A run directory's file that cannot be used; the message names it."""


class CheckpointError(RunError):
    """A checkpoint that cannot be read or does not fit the run."""


class StrategyError(UserError):
    """A tf.distribute setting that this machine cannot give."""


class StudyError(UserError):
    """A study file's mistake: the message names the file and the entry."""


class MissingPackage(UserError):
    """An optional package that this use needs is not installed; the message names the install
    command."""


class LogdirLocked(RuntimeError):
    """Another live process holds the logdir's writer lock; the message names it."""


class StopTraining(Exception):
    """Ends a training run with a message and a non-zero exit code, without a traceback."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code
