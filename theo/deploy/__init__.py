"""Deployment configuration generated from the model manifests."""
