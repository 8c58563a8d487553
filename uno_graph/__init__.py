"""uno-graph."""
