"""Readers, the FeatureEncoder, Batch, splits and negative sampling."""
