"""Small helpers shared across edgecnn's packages, below every one of them (no TensorFlow,
no LiteRT, no other edgecnn package): atomic file writes (``files``), one rich progress
helper (``progress``), silencing native libraries on fd 2 (``quiet``)."""
