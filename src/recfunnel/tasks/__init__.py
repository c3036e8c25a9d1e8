"""recfunnel.tasks."""
