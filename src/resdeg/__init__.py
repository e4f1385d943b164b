"""resdeg: a harness reproducing the degradation experiments of He et al. (2015)."""

__version__ = "0.1.0"


class ResdegError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it.

    The entry points print it as one line and exit with a non-zero status instead of a
    traceback; nothing is recorded as complete.
    """


class RunStopped(ResdegError):
    """A run stopped from outside (SIGTERM, SIGUSR1, SIGUSR2, Ctrl-C), its record interrupted and its
    checkpoint saved: a sweep stops with it, where another job's error lets the sweep go on."""


# Config resolvers (a share of the run's iterations, the number of parallel jobs of a sweep)
# must exist before Hydra resolves a config, in the launching process and in every parallel
# worker. Registering them loads nothing else of the package.
from resdeg.resolvers import register_resolvers  # noqa: E402

register_resolvers()
