"""The code that runs in the inference container: imports no Pulumi."""
