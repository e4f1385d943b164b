"""Experiment tracking beside the run record: Weights & Biases loggers and their offline files.

The run record under results/ stays the source of truth; W&B is the dashboard.
"""
