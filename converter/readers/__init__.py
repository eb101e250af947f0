"""Readers: turn a source model into the in-memory model of converter.model."""
