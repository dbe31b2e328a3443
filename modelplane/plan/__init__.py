"""The offline plan: the real stack program run under the Pulumi SDK's own mocks."""
