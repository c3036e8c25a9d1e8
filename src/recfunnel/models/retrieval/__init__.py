"""Retrieval (candidate generation) models: catalogue-wide scores for users and items."""
