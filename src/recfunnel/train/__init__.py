"""recfunnel.train."""
