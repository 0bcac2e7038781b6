"""One spec, two engines: every spec in infra/pipelines/ and the semantics suite's spec
cases (tests/semantics/spec_helpers.py, joins left out: the Spark runner refuses them) run
through `etl run` and through the Spark runner (infra/glue/etl_spark) on the same generated
dirty inputs. The data rows of every partition (all columns), the quarantine rows of every
reject code and the manifests' counts and quality results must be the same.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import math
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import zstandard

import spec_helpers as sh
from engine import etl_binary
from etl_spark import local, partitions, reader, transform
from etl_spark.source import LocalFile

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "spark-equivalence"
ROWS = 200
# Tiny ranges, so a split reading (etl_spark.split) has records, quoted newlines and line
# ends across range boundaries everywhere.
SPLIT = 512


def _no_joins(case: sh.Case) -> sh.Case:
    return dataclasses.replace(case, steps=[s for s in case.steps if s[0] != "join"],
                               references={})


def _compress(data: bytes, fmt: str) -> bytes:
    """The input as `fmt` says: a .gz or .zst suffix compresses it (zstd in two frames, as a
    writer appending to a file makes it, so the reader has to go across frames)."""
    if fmt.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if fmt.endswith(".zst"):
        half = len(data) // 2
        z = zstandard.ZstdCompressor()
        return z.compress(data[:half]) + z.compress(data[half:])
    return data


def _plain(fmt: str) -> str:
    return fmt.removesuffix(".gz").removesuffix(".zst")


def _pipeline(spec: str, fmt: str):
    """A spec of infra/pipelines on a file `etl generate` writes."""
    def make(d: Path) -> tuple[Path, Path]:
        src = REPO / "infra" / "pipelines" / spec
        plain = d / f"in.{_plain(fmt)}"
        subprocess.run([str(etl_binary()), "generate", "--rows", str(ROWS), "--output",
                        str(plain), "--format", _plain(fmt), "--seed", "7"],
                       check=True, capture_output=True)
        if fmt != _plain(fmt):
            packed = d / f"in.{fmt}"
            packed.write_bytes(_compress(plain.read_bytes(), fmt))
            plain.unlink()
            plain = packed
        return src, plain
    return make


def _case(case: sh.Case, fmt: str):
    def make(d: Path) -> tuple[Path, Path]:
        spec = d / "spec.yaml"
        spec.write_text(sh.spec_yaml(case), encoding="utf-8")
        name, writer, _ = sh.FORMATS[_plain(fmt)]
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
        text = writer(case, sh.generate(case, sh.SEED + len(case.name), ROWS, now), sh.SEED)
        path = d / (name + fmt[len(_plain(fmt)):])
        path.write_bytes(_compress(text.encode("utf-8"), fmt))
        return spec, path
    return make


# Partition directory names (partitions.py against write.rs): text that needs escaping
# (`/`, `=`, `%`, controls, C1 controls, quotes), non-ASCII, NULL, the empty string, and
# values at and just past the directory-name limit, as bytes (`%` triples, `é` doubles), in
# two keys so that the first key's refusal wins.
ROOM = 255 - len("p=")
PARTITION_TEXT = [
    "US", None, "EMPTY", "a/b", "x=y", "50%", "Zoë", "東京", "tab\there", "nl\nx",
    "\u0085nel", "\u0001ctl", "\u007fdel", "#?*:[]^{}\"'\\", "sp ace", "+-.,;@!$&()~",
    "a" * ROOM, "a" * (ROOM + 1), "é" * (ROOM // 2), "é" * (ROOM // 2 + 1),
    "%" * (ROOM // 3), "%" * (ROOM // 3 + 1), "\u0085" * (ROOM // 6 + 1), "🎉" * 64,
]
PARTITIONS_SPEC = """name: parts
source: {prefix: parts/, format: ndjson}
schema:
  - {name: id, type: bigint, required: true}
  - {name: raw, type: string}
  - {name: q, type: string}
  - {name: d, type: double}
  - {name: t, type: timestamp}
  - {name: m, type: "decimal(9,3)"}
  - {name: day, type: date}
  - {name: b, type: boolean}
steps:
  - derive: {column: p, sql: "CASE WHEN raw = 'EMPTY' THEN '' ELSE raw END"}
quality:
  rules:
    - {rule: RowCount, min: 1}
    # Evaluated on the rows left after the partition check: its counts show the order.
    - {rule: ColumnValues, column: q, in: [short, "y"], action: alert}
output: {partition_by: %s}
"""


def _partitions(keys: list[str], rows: list[dict]):
    def make(d: Path) -> tuple[Path, Path]:
        spec = d / "spec.yaml"
        spec.write_text(PARTITIONS_SPEC % json.dumps(keys), encoding="utf-8")
        path = d / "in.ndjson"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return spec, path
    return make


def _text_rows() -> list[dict]:
    rows = []
    for i, v in enumerate(PARTITION_TEXT):
        rows.append({"id": i, "raw": v, "q": "short"})
        # The second key long too: the row is refused for the first.
        rows.append({"id": 100 + i, "raw": v, "q": "q" * 300 if i % 2 else None})
    return rows


def _typed_rows() -> list[dict]:
    values = {
        "d": [1.5, 100.0, 1e20, -0.0, 1e-7, 123456789.125, -2.5e-300, None],
        "t": ["2024-01-31 10:20:30", "2024-01-31T10:20:30.123456Z", "1999-12-31 23:59:59.5",
              "2024-02-29 00:00:00", None, "1970-01-01 00:00:00", "2030-06-01 12:00:00.000001",
              "2000-01-01 00:00:00"],
        "m": ["12.5", "-0.001", "0", "123456.789", None, "1", "-5", "0.1"],
        "day": ["2024-02-29", "1970-01-01", None, "0999-01-01", "2024-12-31", "2000-01-01",
                "1900-03-01", "2099-12-31"],
        "b": [True, False, None, True, False, True, False, None],
    }
    return [{"id": i, "raw": "x", "q": "y", **{k: v[i] for k, v in values.items()}}
            for i in range(8)]


def _nonfinite(d: Path) -> tuple[Path, Path]:
    """Doubles that only expressions make (inf, -inf, NaN) as partition values."""
    spec = d / "spec.yaml"
    spec.write_text(PARTITIONS_SPEC.replace(
        "quality:", '  - derive: {column: z, sql: "CAST(id - 2 AS double) / 0"}\nquality:')
        % '["z"]', encoding="utf-8")
    path = d / "in.ndjson"
    path.write_text("".join(json.dumps({"id": i, "raw": "x", "q": "y"}) + "\n" for i in range(5)),
                    encoding="utf-8")
    return spec, path


RUNS = {
    "customers/csv": _pipeline("customers.yaml", "csv"),
    "customers/csv.gz": _pipeline("customers.yaml", "csv.gz"),
    "customers/csv.zst": _pipeline("customers.yaml", "csv.zst"),
    "api_customers/ndjson": _pipeline("api-customers.yaml", "ndjson"),
    "api_customers/ndjson.zst": _pipeline("api-customers.yaml", "ndjson.zst"),
    **{f"orders/{f}": _case(_no_joins(sh.ORDERS), f)
       for f in ("csv", "ndjson", "json", "csv.gz", "json.zst")},
    **{f"events/{f}": _case(sh.EVENTS, f) for f in ("csv", "ndjson", "tsv", "tsv.zst")},
    "exprs/csv": _case(_no_joins(sh.EXPRS), "csv"),
    "literals/csv": _case(sh.LITERALS, "csv"),
    "partitions/text": _partitions(["p", "q"], _text_rows()),
    "partitions/typed": _partitions(["d", "t", "m", "day", "b"], _typed_rows()),
    "partitions/nonfinite": _nonfinite,
}


def _dirty(make):
    """The input of `make` as CSV made harder to cut: a BOM, CRLF, quoted line ends in the
    `note` column, empty lines, and no line end after the last record."""
    def dirty(d: Path) -> tuple[Path, Path]:
        spec, path = make(d)
        text = path.read_text(encoding="utf-8")
        text = text.replace('"x, y"', '"x,\ny ""z""\n"').replace("\n", "\r\n")
        parts = text.split("\r\n")
        for i in range(len(parts) - 1, 0, -13):
            parts.insert(i, "")
        path.write_text("\ufeff" + "\r\n".join(parts).rstrip("\r\n"), encoding="utf-8")
        return spec, path
    return dirty


# Runs read by tasks: (input, split size). Few, with a few dozen ranges each, since each
# range is a partition of every later step (test_split.py tries every size on the reader
# alone). Compressed input and a JSON array are read by one task whatever the size.
SPLIT_RUNS = {
    "customers/csv.zst": (RUNS["customers/csv.zst"], SPLIT),
    "orders/dirty.csv": (_dirty(_case(_no_joins(sh.ORDERS), "csv")), SPLIT),
    "orders/ndjson": (RUNS["orders/ndjson"], 4 * SPLIT),
    "orders/json": (RUNS["orders/json"], SPLIT),
    "events/tsv": (RUNS["events/tsv"], SPLIT),
}


def _rows(con, path: Path, columns: list[str]) -> list[tuple]:
    _, rows = sh.read_parquet_rows(con, path, columns)
    return sorted((tuple(_norm(v) for v in r) for r in rows), key=repr)


def _norm(v):
    # NaN is not equal to itself; its text is.
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v


def _comparable(row: tuple) -> tuple:
    """A quarantine row with the reasons README lists as worded differently by the two
    engines cut to what they share: a JSON parser's message (serde_json's or Python's) and
    a non-text value in a cast step's message (polars prints `1.0000e300`)."""
    code, reason = row[-3], row[-2]
    if code == "malformed_record" and reason and reason.startswith("invalid JSON at column"):
        reason = "invalid JSON"
    elif code.startswith("invalid_cast:") and reason \
            and " cannot be cast to " in reason:
        reason = reason.split(":", 1)[0] + ": <value>" + reason.split(" cannot be cast to ", 1)[1]
    return (*row[:-2], reason, row[-1])


def _tree(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*.parquet"))}


def _processed_at(con, out: Path, dataset: str, plan: dict) -> dt.datetime | None:
    steps = [s for s in plan["steps"] if s["kind"] == "processed_at"]
    files = sorted((out / dataset).rglob("*.parquet"))
    if not steps or not files:
        return None
    col = sh.ident(steps[0]["column"])
    (v,) = con.execute(f"SELECT DISTINCT epoch_us({col}) FROM read_parquet('{files[0]}', "
                       "hive_partitioning = false)").fetchone()
    return dt.datetime.fromtimestamp(v / 1e6, dt.timezone.utc)


@pytest.mark.parametrize("label", list(RUNS))
def test_both_engines_give_the_same_result(spark, label):
    _compare(spark, label, RUNS[label], None)


@pytest.mark.parametrize("label", list(SPLIT_RUNS))
def test_both_engines_give_the_same_result_reading_in_splits(spark, label):
    _compare(spark, label, *SPLIT_RUNS[label])


def _spark_plan(spec: Path) -> dict:
    planned = subprocess.run([str(etl_binary()), "plan", "--spec", str(spec), "--target", "spark"],
                             capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr
    return json.loads(planned.stdout)


def _compare(spark, label: str, make, split_bytes: int | None):
    d = WORK / (label.replace("/", "-") + (f"-split{split_bytes}" if split_bytes else ""))
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    spec, input_path = make(d)
    if split_bytes:
        assert input_path.stat().st_size > 4 * split_bytes, "the input is read by tasks"
    etl = str(etl_binary())
    plan = _spark_plan(spec)
    out_r, out_s = d / "engine", d / "spark"
    engine = subprocess.run([etl, "run", "--spec", str(spec), "--input", str(input_path),
                             "--output", str(out_r), "--json"], capture_output=True, text=True)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    dataset = plan["dataset"]
    now = _processed_at(con, out_r, dataset, plan)
    transform.configure(spark, plan)
    try:
        manifest_s = local.run(spark, plan, str(input_path), str(out_s), now=now,
                               split_bytes=split_bytes)
        spark_code, spark_error = (0 if manifest_s["status"] == "succeeded" else 5), ""
    except (reader.InputError, transform.RecordError) as e:
        manifest_s, spark_code, spark_error = None, 4, str(e)
    assert engine.returncode == spark_code, f"engine: {engine.stderr} spark: {spark_error}"
    if engine.returncode == 4:
        return
    manifest_r = json.loads(engine.stdout)
    findings = []
    if split_bytes:
        # What the reader reports of the file is what it reports reading it whole.
        whole = reader.read(LocalFile(str(input_path)).read_all(), str(input_path), plan)
        got = (manifest_s["source"]["format"], manifest_s["source"]["bytes"],
               manifest_s["input_columns"])
        want = (whole.format, whole.bytes, {"found": whole.found, "dropped": whole.dropped})
        if got != want:
            findings.append(f"source: split {got}, whole {want}")
    if manifest_r["counts"] != manifest_s["counts"]:
        findings.append(f"counts: engine {manifest_r['counts']} spark {manifest_s['counts']}")
    for a, b in zip(manifest_r["quality"]["rules"], manifest_s["quality"]["rules"]):
        keys = ("rule", "passed", "actual", "required", "evaluated_rows", "failing_rows")
        if any(a[k] != b[k] for k in keys):
            findings.append(f"rule: engine {[a[k] for k in keys]} spark {[b[k] for k in keys]}")
    for k in ("score", "passed", "alert"):
        if manifest_r["quality"][k] != manifest_s["quality"][k]:
            findings.append(f"quality {k}: engine {manifest_r['quality'][k]} spark {manifest_s['quality'][k]}")
    parts = set(plan["output"]["partition_by"])
    columns = [c["name"] for c in plan["columns"] if c["name"] not in parts]
    tree_r, tree_s = _tree(out_r / dataset), _tree(out_s / dataset)
    if sorted(tree_r) != sorted(tree_s):
        findings.append(f"partitions: engine only {sorted(set(tree_r) - set(tree_s))}, "
                        f"spark only {sorted(set(tree_s) - set(tree_r))}")
    for rel in sorted(set(tree_r) & set(tree_s)):
        a, b = _rows(con, tree_r[rel], columns), _rows(con, tree_s[rel], columns)
        if a != b:
            only_a = [r for r in a if r not in b][:3]
            only_b = [r for r in b if r not in a][:3]
            findings.append(f"{rel}: engine only {only_a}, spark only {only_b}")
    q = f"_quarantine/{dataset}/{input_path.name.replace('/', '_')}"
    q_cols = [c["name"] for c in plan["schema"]] + ["_source_line", "_reject_code",
                                                      "_reject_reason", "_raw"]
    qr = _tree(out_r / "_quarantine" / dataset)
    qs = _tree(out_s / "_quarantine" / dataset)
    assert sorted(qr) == sorted(qs), f"{q}: engine {sorted(qr)} spark {sorted(qs)}"
    for rel in qr:
        # The runner writes its quarantine in line order.
        _, lines = sh.read_parquet_rows(con, qs[rel], ["_source_line"])
        if lines != sorted(lines):
            findings.append(f"quarantine {rel}: spark's rows are not in line order")
        a = sorted(map(_comparable, _rows(con, qr[rel], q_cols)), key=repr)
        b = sorted(map(_comparable, _rows(con, qs[rel], q_cols)), key=repr)
        by_code = {}
        for side, rows in (("engine", a), ("spark", b)):
            for r in rows:
                by_code.setdefault(r[-3], {"engine": [], "spark": []})[side].append(r)
        for code, sides in sorted(by_code.items()):
            if sides["engine"] != sides["spark"]:
                only_a = [r for r in sides["engine"] if r not in sides["spark"]][:2]
                only_b = [r for r in sides["spark"] if r not in sides["engine"]][:2]
                findings.append(f"quarantine {code}: engine only {only_a}, spark only {only_b}")
    assert not findings, f"{label}:\n" + "\n".join(findings)


def test_too_many_partitions_is_refused_by_both(spark):
    """More partitions in one input than the plan's `max_partitions`: `etl run` exits 3
    (a spec error), the runner raises TooManyPartitions (local.py exits 3)."""
    d = WORK / "partitions-too-many"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    spec = d / "spec.yaml"
    spec.write_text(PARTITIONS_SPEC % '["raw"]', encoding="utf-8")
    etl = str(etl_binary())
    plan = _spark_plan(spec)
    n = plan["output"]["partition"]["max_partitions"] + 1
    path = d / "in.ndjson"
    path.write_text("".join(json.dumps({"id": i, "raw": f"v{i}"}) + "\n" for i in range(n)),
                    encoding="utf-8")
    engine = subprocess.run([etl, "run", "--spec", str(spec), "--input", str(path), "--output",
                             str(d / "engine")], capture_output=True, text=True)
    assert engine.returncode == 3, engine.stderr
    assert "partitions in one input" in engine.stderr
    transform.configure(spark, plan)
    with pytest.raises(partitions.TooManyPartitions, match="partitions in one input"):
        local.run(spark, plan, str(path), str(d / "spark"))
