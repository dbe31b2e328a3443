"""How `modelplane plan` scales with the number of GPU pools, against the bare Pulumi SDK.

For 1, 10, 100 and 200 GPU pools this plans a generated environment and, in the same run,
has the bare SDK register the same number of plain resources under the same mocks. It
prints, last, the ratio of the two times per size and how each grows with size.
Target: modelplane within 2x of the bare SDK, and linear in the number of resources.

    .venv/bin/python -m benchmarks.plan_scaling [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pulumi
import pulumi_aws as aws
import yaml
from pulumi.runtime import MockCallArgs, MockResourceArgs
from pulumi.runtime.mocks import MockMonitor

from modelplane.plan.engine import plan_environment
from modelplane.plan.harness import run_with_mocks
from modelplane.plan.policy_check import planned_resources
from modelplane.policies.deployability.analysis import deployability_findings

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 10, 100, 200)


class BareMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: MockCallArgs) -> tuple[dict, None]:
        return {}, None


def write_environment(stacks: Path, pools: int) -> str:
    name = f"bench{pools}"
    shutil.copy(ROOT / "stacks" / "__main__.py", stacks / "__main__.py")
    config = {
        "aws:region": "us-east-1",
        "modelplane:network": {"az_count": 2, "nat_gateways": "single"},
        "modelplane:cluster": {"endpoint_access": "private", "deployer_cidrs": ["10.120.0.0/22"]},
        "modelplane:gpu_node_pools": [
            {"name": f"pool-{i}", "instance_type": "g6.xlarge", "min_size": 0, "max_size": 1} for i in range(pools)
        ],
        "modelplane:budget": {"max_gpus": pools, "max_monthly_gpu_cost_usd": pools * 1000},
    }
    (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
    return name


def time_modelplane(stacks: Path, environment: str) -> tuple[float, int]:
    start = time.perf_counter()
    plan = plan_environment(environment, stacks)
    return time.perf_counter() - start, len(plan.resources)


def time_analysis(stacks: Path, environment: str) -> tuple[float, float]:
    """The plan alone, and the deployability analysis over its resources, in seconds."""
    start = time.perf_counter()
    plan = plan_environment(environment, stacks)
    planned = time.perf_counter() - start
    resources = planned_resources(plan)
    start = time.perf_counter()
    deployability_findings(resources)
    return planned, time.perf_counter() - start


def time_bare_sdk(resources: int) -> float:
    mocks = BareMocks()

    def program() -> None:
        for index in range(resources):
            aws.s3.Bucket(f"bucket-{index}", tags={"index": str(index)})

    start = time.perf_counter()
    run_with_mocks(program, mocks, MockMonitor(mocks), stack="bench")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    repeat = parser.parse_args().repeat

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        stacks = Path(directory)
        for pools in SIZES:
            environment = write_environment(stacks, pools)
            time_modelplane(stacks, environment)  # warm imports and caches once
            runs = [time_modelplane(stacks, environment) for _ in range(repeat)]
            ours = min(seconds for seconds, _ in runs)
            count = runs[0][1]
            bare = min(time_bare_sdk(count) for _ in range(repeat))
            rows.append((pools, count, ours, bare))
            print(f"{pools:>4} pools: {count:>5} resources  modelplane {ours:7.3f}s  bare SDK {bare:7.3f}s")

    print()
    print(f"{'pools':>5} {'resources':>9} {'modelplane s':>12} {'bare SDK s':>10} {'ratio':>6} {'ms/resource':>11}")
    for pools, count, ours, bare in rows:
        print(f"{pools:>5} {count:>9} {ours:>12.3f} {bare:>10.3f} {ours / bare:>6.2f} {1000 * ours / count:>11.2f}")
    # Linear means each added resource costs the same: compare the marginal cost of the last two steps.
    (_, count_10, time_10, bare_10), (_, count_100, time_100, bare_100), (_, count_200, time_200, bare_200) = rows[1:]
    growth = ((time_200 - time_100) / (count_200 - count_100)) / ((time_100 - time_10) / (count_100 - count_10))
    bare_growth = ((bare_200 - bare_100) / (count_200 - count_100)) / ((bare_100 - bare_10) / (count_100 - count_10))
    ratios = [ours / bare for _, _, ours, bare in rows]
    with tempfile.TemporaryDirectory() as directory:
        stacks = Path(directory)
        environment = write_environment(stacks, SIZES[-1])
        timings = [time_analysis(stacks, environment) for _ in range(repeat)]
    plan_seconds = min(planned for planned, _ in timings)
    analysis_seconds = min(analysis for _, analysis in timings)
    print(
        f"deployability analysis at {SIZES[-1]} pools: plan {plan_seconds:.3f}s, analysis {analysis_seconds:.3f}s "
        f"(+{100 * analysis_seconds / plan_seconds:.1f}%)"
    )
    print(
        f"RESULT: modelplane/bare-SDK time ratio {', '.join(f'{r:.2f}' for r in ratios)} at {SIZES} pools "
        f"(median {statistics.median(ratios):.2f}; target <= 2.0); marginal cost per resource, 100->200 pools over "
        f"10->100 pools: {growth:.2f} (1.0 = linear; the bare SDK's own: {bare_growth:.2f}); deployability "
        f"analysis adds {100 * analysis_seconds / plan_seconds:.1f}% at {SIZES[-1]} pools (target <= 20%)"
    )


if __name__ == "__main__":
    main()
