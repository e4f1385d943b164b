"""Training: the LightningModule, the iteration-based schedule, the run recorder."""
