"""Measuring finished runs: metrics, intervals, explanations, external sets, annotation reliance."""
