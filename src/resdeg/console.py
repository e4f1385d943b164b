"""What a run prints: one line when it starts, one when it ends, and nothing twice.

Lightning attaches its own handler to its loggers when it is imported before logging is
configured (as it is under Hydra), so every Lightning message came out twice, once through
its handler and once through Hydra's; its start-up chatter (devices found, a tip to install
another product, "max_steps reached") and one deprecation that torch raises inside
Lightning's own code are filtered here, at their source, by logger or by exact message.
Warnings and errors of every library still print.
"""

from __future__ import annotations

import logging
import sys
import warnings
from functools import partial

log = logging.getLogger("resdeg")

# Lightning's informational messages: the device summary, the LitLogger/litmodels tips and
# "`Trainer.fit` stopped: `max_steps=N` reached" (the run's own end line says how it ended)
LIGHTNING_CHATTER = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def quiet_libraries() -> None:
    """Call once logging is configured (in the Hydra task function)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()  # Lightning's own handler: Hydra's (on the root logger) prints them once
        logger.propagate = True
    for name in LIGHTNING_CHATTER:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # Hydra's console and file handlers
        handler.handleError = partial(_quiet_on_dead_pipe, handler.handleError)
    # Two warnings Lightning gives on every resume that are false here: the checkpoint folder
    # holds this run's own checkpoints (that is how it resumes), and the mid-epoch position is
    # restored exactly: the data order is a function of (seed, iteration) (resdeg/data/order.py;
    # tests/integration/test_resilience.py resumes mid-epoch and equals the uninterrupted twin)
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")
    # and a run resumed from another folder (a fresh clone of an in-flight run, make sweep-paper-20):
    # Lightning's best-k bookkeeping is not reloaded, which this harness never reads
    warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
    # Lightning's hint to prepend srun, given wherever srun is installed (every cluster login
    # node): a run outside a SLURM job is local by choice, and hydra/launcher=slurm submits with srun
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")
    # torch 2.14 deprecates LeafSpec, which Lightning 2.6's _pytree still builds on every step
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )


def run_started(identity: dict, record: str, action: str, iteration: int, wandb_mode: str) -> None:
    how = f"resuming at iteration {iteration}" if action == "resume" else "starting"
    log.info(
        f"{identity['name']} seed {identity['seed']}, protocol {identity['protocol']}: {how}; "
        f"record {record}; W&B {wandb_mode}"
    )


def run_ended(identity: dict, status: str, final: dict | None, seconds: float, record: str) -> None:
    errors = ", ".join(f"{key.removesuffix('_error')} {value:.2f}%" for key, value in (final or {}).items())
    minutes, rest = divmod(round(seconds), 60)
    log.info(
        f"{identity['name']} seed {identity['seed']}: {status}{' (error: ' + errors + ')' if errors else ''} "
        f"in {minutes} min {rest:02d} s; record {record}"
    )


def _quiet_on_dead_pipe(handle_error, record) -> None:
    """A log line written to a pipe whose reader is gone: the run stops on the SIGPIPE that
    write raised (resdeg.training.preemption), so the write's traceback is only noise."""
    if not isinstance(sys.exc_info()[1], BrokenPipeError):
        handle_error(record)


def output_to_stderr() -> None:
    """The reader of stdout is gone (``| tee log`` with tee ended): log lines go to stderr from
    now on, so the run's last lines still reach the terminal, and no write to the dead pipe
    prints a logging traceback."""
    for logger in (
        logging.getLogger(),
        *(each for each in logging.root.manager.loggerDict.values() if isinstance(each, logging.Logger)),
    ):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "fileno", None):
                try:
                    if handler.stream.fileno() == 1:
                        handler.stream = sys.stderr  # (setStream would flush the dead pipe first)
                except (OSError, ValueError):
                    pass
