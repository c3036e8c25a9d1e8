"""Ranking (CTR) models; importing a module registers its model."""
