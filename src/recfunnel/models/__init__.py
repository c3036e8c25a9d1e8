"""recfunnel.models."""
