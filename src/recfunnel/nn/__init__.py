"""recfunnel.nn."""
