"""Advantage and return estimators: pure functions with their shapes stated."""
