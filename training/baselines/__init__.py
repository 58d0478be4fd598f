"""Baseline models that the LightGBM models must beat: rules, logistic regression, BG/NBD."""
