"""recfunnel.models.ranking."""
