"""Exception types shared by the whole package.

``InputError`` is raised for anything the caller can fix (a wrong shape, an unknown name,
an absurd parameter); the CLI maps it to exit code 2.  ``JointspaceError`` is the base of
everything else the package raises on purpose; the CLI maps it to exit code 1.
"""


class JointspaceError(Exception):
    """Base class of the package's own errors (runtime failures)."""


class InputError(JointspaceError, ValueError):
    """Bad input: the message names the argument, what was expected and what was given."""


class NotFittedError(JointspaceError, AttributeError):
    """A model was used before ``fit``."""


class MissingDependencyError(JointspaceError, ImportError):
    """An optional package, Debian package or data file is not installed."""


class TrainingDiverged(JointspaceError):
    """Training met a NaN or infinite loss or gradient and stopped without stepping on it.

    Attributes
    ----------
    step, epoch : int
        Where it happened, counted from 0 as the loss function saw them.
    value : float
        The loss, or the gradient norm.
    checkpoint : str or None
        The last checkpoint written before it (left untouched), to resume from.
    """

    def __init__(self, message: str, *, step: int | None = None, epoch: int | None = None,
                 value: float | None = None, checkpoint: str | None = None):
        super().__init__(message)
        self.step, self.epoch, self.value, self.checkpoint = step, epoch, value, checkpoint
