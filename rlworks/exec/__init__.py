"""Running runs: the single-run driver, local process pools, Ray, HPO."""
