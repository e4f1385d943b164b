"""The report's figures and tables in W&B, beside the live curves: `make report` with W&B on
(LOGGER=wandb, the sweeps' default) logs every figure it drew (Fig. 1, 4, 6, 7, the budget
study) as an image and every table (Table 2, 3, 6, the budget study) as a W&B table, to one
run named ``report`` (job type ``report``) in the runs' project. Each `make report` is a new
report run: the dashboard's latest one is the current state of results/.
"""

from __future__ import annotations

import os
from pathlib import Path

from resdeg.paths import experiments_root


def log_report(
    written: list[Path], results_dir: Path, mode: str = "auto", project: str | None = None, save_dir: str | None = None
) -> str | None:
    """Log the report's PNG figures and CSV tables; the W&B run's id (None when W&B is disabled)."""
    import pandas as pd
    import wandb

    from resdeg.tracking.wandb_mode import choose_mode

    mode = choose_mode(mode)
    if mode == "disabled":
        return None
    save_dir = Path(save_dir or experiments_root()) / "wandb"
    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project or os.environ.get("WANDB_PROJECT", "resdeg"),
        entity=os.environ.get("WANDB_ENTITY"),
        name="report",
        job_type="report",
        group="report",
        dir=str(save_dir),
        mode=mode,
        config={"results": str(Path(results_dir).absolute())},
        settings=wandb.Settings(console="off"),
    )
    try:
        for path in sorted(written):
            if path.suffix == ".png":
                run.log({f"figures/{path.stem}": wandb.Image(str(path))})
            elif path.suffix == ".csv":
                table = pd.read_csv(path)
                run.log({f"tables/{path.stem}": wandb.Table(dataframe=table.astype(object).where(table.notna(), None))})
    finally:
        run.finish()
    return run.id
