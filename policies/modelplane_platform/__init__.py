"""The CrossGuard pack modelplane ships: `__main__` serves it; its rules live in `modelplane.policies.rules`."""
