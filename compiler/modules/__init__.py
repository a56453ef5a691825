"""torch modules built by the ops (imported only when a graph is lowered)."""
