"""One module per CLI verb; each has ``register(subparsers)`` and formats one library call."""
