"""The DMoE co-simulation: protocol rounds, sweeps, results, plots and the ``dmoe`` CLI."""

__all__ = []
