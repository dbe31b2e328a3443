"""The inference server: serves one exported text classifier over the Open Inference Protocol (KServe v2).

`config` reads the settings, `classifier` runs the model, `batching` groups requests into batches,
`protocol` parses and renders v2 messages, `metrics` defines what Prometheus scrapes, `app` wires
the HTTP endpoints and `server` loads the model and runs uvicorn until SIGTERM.
"""
