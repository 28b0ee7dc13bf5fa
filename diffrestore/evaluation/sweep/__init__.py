"""Ablation sweeps (``diffrestore-sweep``): a grid of settings restored, scored and tabulated.

``config`` (schema, points) -> ``runner`` (restore, score, skip what is up to date; ``fingerprint``)
-> ``results`` (table, plots); ``ablation`` holds the switches only sweeps use; ``cli`` the command.
"""

from ..ablation import AblationOptions, AblationRestorer, restore_ablated
from .cli import main, run_sweep
from .config import Point, SweepConfig, load_sweep
from .results import write_results
from .runner import SweepRunner

__all__ = ["AblationOptions", "AblationRestorer", "Point", "SweepConfig", "SweepRunner", "load_sweep", "main",
           "restore_ablated", "run_sweep", "write_results"]
