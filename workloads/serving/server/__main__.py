"""`python -m modelplane.workloads.serving.server --model-uri s3://bucket/models/run-1`: see `config`."""

from modelplane.workloads.serving.server.entrypoint import main

raise SystemExit(main())
