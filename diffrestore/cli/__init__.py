"""Command-line tools of the product: ``diffrestore`` (restore photos) and ``diffrestore-template``."""

from .restore import main

__all__ = ["main"]
