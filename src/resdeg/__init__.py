"""resdeg: a harness reproducing the degradation experiments of He et al. (2015)."""

__version__ = "0.1.0"

from resdeg.errors import ResdegError, RunStopped  # noqa: E402,F401 - every module's errors, as ``resdeg.ResdegError``
