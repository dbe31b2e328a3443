"""`python -m workloads.serving --model-uri s3://bucket/models/run-1`: see `workloads.serving.config`."""

from workloads.serving.server import main

raise SystemExit(main())
