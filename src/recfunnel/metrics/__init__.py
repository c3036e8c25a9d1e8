"""recfunnel.metrics."""
