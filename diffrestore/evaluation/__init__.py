"""Scoring restored faces: pairing, groups, features, metric selection, scoring, reports, CLI."""
