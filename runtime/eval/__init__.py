"""Evaluation: the TF Inception feature extractor and FID, IS, KID, precision/recall."""
