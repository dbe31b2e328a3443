"""The `local` environment: the same workload specs as the cloud, run as local processes with a real Prometheus."""
