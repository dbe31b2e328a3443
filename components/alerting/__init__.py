"""Prometheus alerting and recording rules for modelplane, as typed data rendered for Prometheus.

`rules` holds the model and its renderers; `gpu_rules`, `platform_rules`, `training_rules`,
`inference_rules` and `custom_rules` build rule groups; `promtool` checks them with Prometheus' own tool.
"""
