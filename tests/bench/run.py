"""Benchmarks the Rust engine against pandas, polars and DuckDB on the same generated file,
in one run: wall time, input MB/s, peak RSS and output rows, pinned to one core (a 1,769 MB
Lambda has one vCPU) and on all cores, with each peer's ratio to ours. Output row counts
must match across engines, or the run fails. Every engine runs ROUNDS times (env, default
3), in rounds so that all see the same machine; the table shows each one's median.

usage: run.py ETL_BINARY INPUT.csv WORK_DIR
"""

import json
import os
import statistics
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SPEC = REPO / "infra/pipelines/customers.yaml"


def measure(cmd: list[str], env: dict[str, str], work: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of that process alone (wait4), and its stdout."""
    out_path, err_path = work / "stdout.txt", work / "stderr.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err_path.read_text()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out_path.read_text()


def run_one(engine: str, etl: str, src: Path, work: Path, cores: str) -> dict:
    threads = 1 if cores == "1" else os.cpu_count()
    out = work / f"{engine}-{cores}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, POLARS_MAX_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               ARROW_NUM_THREADS=str(threads))
    pin = ["taskset", "-c", "0"] if cores == "1" else []
    if engine in ("rust", "rust-parse"):
        spec = SPEC if engine == "rust" else HERE / "parse-only.yaml"
        cmd = pin + [etl, "run", "--spec", str(spec), "--input", str(src), "--output", str(out),
                     "--threads", str(threads), "--json"]
    else:
        cmd = pin + [sys.executable, str(HERE / "peers.py"), engine, str(src), str(out), str(threads)]
    wall, rss, stdout = measure(cmd, env, work)
    doc = json.loads(stdout)
    rows = doc["rows_out"] if "rows_out" in doc else doc["counts"]["rows_out"]
    return {"engine": engine, "cores": cores, "wall_s": wall, "rss_mb": rss, "rows_out": rows}


def main() -> None:
    etl, src, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    size_mb = src.stat().st_size / 1e6
    rounds = int(os.environ.get("ROUNDS", "3"))
    runs: dict[tuple[str, str], list[dict]] = {}
    for n in range(rounds):
        for cores in ("1", "all"):
            for engine in ("rust", "pandas", "polars", "duckdb", "rust-parse"):
                r = run_one(engine, etl, src, work, cores)
                runs.setdefault((engine, cores), []).append(r)
                print(f"  round {n + 1}/{rounds} {engine:<10} cores={cores:<3} "
                      f"{r['wall_s']:7.2f} s  {r['rss_mb']:7.0f} MB", file=sys.stderr)
    results = []
    for (engine, cores), rs in runs.items():
        if len({r["rows_out"] for r in rs}) != 1:
            sys.exit(f"{engine} gave different row counts across rounds: {rs}")
        results.append({"engine": engine, "cores": cores, "rounds": len(rs),
                        "wall_s": statistics.median(r["wall_s"] for r in rs),
                        "rss_mb": statistics.median(r["rss_mb"] for r in rs),
                        "rows_out": rs[0]["rows_out"],
                        "all_wall_s": [round(r["wall_s"], 3) for r in rs]})
    print(f"\nInput: {src.name}, {size_mb:.0f} MB, {os.cpu_count()} cores, "
          f"median of {rounds} rounds\n")
    print("| engine | cores | wall s | MB/s | peak RSS MB | rows out | time vs ours | RSS vs ours |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for cores in ("1", "all"):
        ours = next(r for r in results if r["engine"] == "rust" and r["cores"] == cores)
        for r in (r for r in results if r["cores"] == cores):
            print(f"| {r['engine']} | {cores} | {r['wall_s']:.2f} | {size_mb / r['wall_s']:.0f} | "
                  f"{r['rss_mb']:.0f} | {r['rows_out']} | {r['wall_s'] / ours['wall_s']:.2f}x | "
                  f"{r['rss_mb'] / ours['rss_mb']:.2f}x |")
            if r["engine"] != "rust-parse" and r["rows_out"] != ours["rows_out"]:
                ok = False
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if not ok:
        sys.exit("output row counts differ between engines: the comparison is not like for like")


if __name__ == "__main__":
    main()
