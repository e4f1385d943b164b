"""The package's errors: the ones a user can fix, and a run stopped from outside."""


class ResdegError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it.

    The entry points print it as one line and exit with a non-zero status instead of a
    traceback; nothing is recorded as complete.
    """


class RunStopped(ResdegError):
    """A run stopped from outside (SIGTERM, SIGUSR1, SIGUSR2, Ctrl-C), its record interrupted and its
    checkpoint saved: a sweep stops with it, where another job's error lets the sweep go on."""
