"""recfunnel.cli."""
