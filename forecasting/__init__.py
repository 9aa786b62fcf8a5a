"""Renewable supply forecasting (pure numpy/scipy; imports nothing of ours)."""
