"""Pure shared terms, the bottom layer: the GPU catalog, scheduling labels and taints, names and their limits."""
