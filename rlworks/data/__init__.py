"""Rollout storage, replay buffers, offline datasets and samplers."""
