"""Benchmarks the Rust engine against pandas, polars and DuckDB on the same generated file,
in one run: wall time, input MB/s, peak RSS and output rows, pinned to one core (a 1,769 MB
Lambda has one vCPU) and on all cores, with each peer's ratio to ours. Output row counts
must match across engines, or the run fails. Every engine runs ROUNDS times (env, default
3), in rounds so that all see the same machine; the table shows each one's median.

The Spark runner (`python -m etl_spark.local`, the Glue job's transform on master
local[*]) runs on all cores in the first SPARK_ROUNDS rounds (env, default 1; 0 skips it),
from the venv in SPARK_VENV; its peak RSS is the sum over its process tree (the Python
driver and the JVM it starts), sampled, since wait4 reports one process's peak.

usage: run.py ETL_BINARY INPUT.csv WORK_DIR
"""

import json
import os
import statistics
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SPEC = REPO / "infra/pipelines/customers.yaml"
SPARK_DRIVER_MEMORY = os.environ.get("SPARK_DRIVER_MEMORY", "6g")


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


def _tree_rss_kb(root: int) -> int:
    """Resident KB of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ... rss (in pages) is field 24 of stat.
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def measure_tree(cmd: list[str], env: dict[str, str], work: Path) -> tuple[float, float, str]:
    """As `measure`, with peak RSS summed over the process tree, sampled every 50 ms."""
    out_path, err_path = work / "stdout.txt", work / "stderr.txt"
    peak, done = [0], threading.Event()
    with out_path.open("w") as out, err_path.open("w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err_path.read_text()[-2000:]}")
    return wall, max(peak[0], usage.ru_maxrss) / 1024, out_path.read_text()


def run_one(engine: str, etl: str, src: Path, work: Path, cores: str) -> dict:
    threads = 1 if cores == "1" else os.cpu_count()
    out = work / f"{engine}-{cores}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, POLARS_MAX_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               ARROW_NUM_THREADS=str(threads))
    pin = ["taskset", "-c", "0"] if cores == "1" else []
    if engine == "spark":
        plan = work / "spark-plan.json"
        with plan.open("w") as f:
            subprocess.run([etl, "plan", "--spec", str(SPEC), "--target", "spark"], stdout=f,
                           check=True)
        env["PYTHONPATH"] = str(REPO / "infra/glue")
        # The runner holds the input on the driver; Spark's default 1 GB is too little.
        env["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {SPARK_DRIVER_MEMORY} pyspark-shell"
        cmd = pin + [str(Path(os.environ["SPARK_VENV"]) / "bin/python"), "-m", "etl_spark.local",
                     "--plan", str(plan), "--input", str(src), "--output", str(out),
                     "--master", "local[1]" if cores == "1" else "local[*]", "--json"]
        wall, rss, stdout = measure_tree(cmd, env, work)
        doc = json.loads(stdout)
        return {"engine": engine, "cores": cores, "wall_s": wall, "rss_mb": rss,
                "rows_out": doc["counts"]["rows_out"]}
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
    spark_rounds = int(os.environ.get("SPARK_ROUNDS", "1")) if os.environ.get("SPARK_VENV") else 0
    runs: dict[tuple[str, str], list[dict]] = {}
    for n in range(rounds):
        for cores in ("1", "all"):
            spark = ["spark"] if cores == "all" and n < spark_rounds else []
            for engine in ("rust", "pandas", "polars", "duckdb", "rust-parse", *spark):
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
          f"median of {rounds} rounds" + (f" (spark: {spark_rounds})" if spark_rounds else "")
          + "\n")
    print("| engine | cores | wall s | MB/s | peak RSS MB | rows out | time vs ours | RSS vs ours |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for cores in ("1", "all"):
        ours = next(r for r in results if r["engine"] == "rust" and r["cores"] == cores)
        for r in (r for r in results if r["cores"] == cores):
            mbps = size_mb / r["wall_s"]
            print(f"| {r['engine']} | {cores} | {r['wall_s']:.2f} | {mbps:.{0 if mbps >= 10 else 1}f} | "
                  f"{r['rss_mb']:.0f} | {r['rows_out']} | {r['wall_s'] / ours['wall_s']:.2f}x | "
                  f"{r['rss_mb'] / ours['rss_mb']:.2f}x |")
            if r["engine"] != "rust-parse" and r["rows_out"] != ours["rows_out"]:
                ok = False
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if not ok:
        sys.exit("output row counts differ between engines: the comparison is not like for like")


if __name__ == "__main__":
    main()
