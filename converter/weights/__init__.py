"""Weight readers, writers and quantization in the TF.js format (numpy only)."""
