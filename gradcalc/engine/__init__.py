"""Numbers only: the op table, backward rules and their interpreters, the graph and the reverse pass."""
