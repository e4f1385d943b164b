"""Report stage: figures, tables and the degradation verdict, from results/ alone."""

from resdeg.report.load import Results, load_results

__all__ = ["Results", "load_results"]
