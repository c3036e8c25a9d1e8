"""recfunnel.datasets."""
