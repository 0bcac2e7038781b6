"""Builds the Glue job's --extra-py-files zip: the `etl_spark` package with the plan of
every spec in infra/pipelines/ (`etl_spark/plans/<dataset>.json`, from `etl plan --target
spark`). The zip is byte-for-byte the same for the same sources (fixed timestamps, sorted
entries), so deployments upload it only when it changed.

    python3 infra/glue/package.py --etl path/to/etl --out build/glue/etl_spark.zip
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STAMP = (2020, 1, 1, 0, 0, 0)


def build(etl: str, out: Path, pipelines: Path = REPO / "infra" / "pipelines") -> list[str]:
    plans: dict[str, bytes] = {}
    for spec in sorted([*pipelines.glob("*.yaml"), *pipelines.glob("*.yml")]):
        done = subprocess.run([etl, "plan", "--spec", str(spec), "--target", "spark"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            # A spec the Spark runner cannot run is refused here, not when its data arrives.
            raise SystemExit(f"{spec}: {done.stderr.strip()}")
        plan = json.loads(done.stdout)
        if plan["dataset"] in plans:
            raise SystemExit(f"{spec}: dataset {plan['dataset']} is defined twice")
        plans[plan["dataset"]] = (json.dumps(plan, indent=1, sort_keys=True) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)

        for path in sorted((HERE / "etl_spark").glob("*.py")):
            add(f"etl_spark/{path.name}", path.read_bytes())
        for dataset, data in sorted(plans.items()):
            add(f"etl_spark/plans/{dataset}.json", data)
    tmp.replace(out)
    return sorted(plans)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--etl", required=True, help="the etl binary")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    datasets = build(args.etl, args.out)
    print(f"{args.out}: etl_spark with the plans of {', '.join(datasets)}", file=sys.stderr)


if __name__ == "__main__":
    main()
