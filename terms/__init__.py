"""Pure shared terms at the bottom of the layers: the GPU catalog, scheduling labels and taints, names and their limits."""
