"""Small helpers shared across edgecnn's packages (no TensorFlow, no LiteRT)."""
