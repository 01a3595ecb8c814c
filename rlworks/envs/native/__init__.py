"""Numpy-batched classic-control envs with gymnasium 1.2.0's exact dynamics (see ``base``)."""
