"""Writers: turn the in-memory model into output artifacts."""
