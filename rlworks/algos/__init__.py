"""Algorithms, one readable file per family, composed from the layers above."""
