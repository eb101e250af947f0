"""Transforms: pure functions model -> model."""
