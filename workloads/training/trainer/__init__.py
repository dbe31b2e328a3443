"""The code that runs in the training container: imports no Pulumi."""
