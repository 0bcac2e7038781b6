"""The Glue job's parts that need no Spark and no AWS: output ids (against the Rust
implementation through `etl output-id`), argument parsing, spec matching by prefix,
manifest and intent records, catalog schema evolution, alert wording."""

from __future__ import annotations

import json
import subprocess

import pytest

from engine import etl_binary
from etl_spark import catalog, ids, job, publish

TRICKY_KEYS = [
    ("raw", "raw-data/customers/a b.csv"),
    ("raw", "raw-data/customers/2024/a b.csv"),
    ("other", "raw-data/customers/a b.csv"),
    ("raw", "raw-data/customers/été – naïve ☃.csv.gz"),
    ("raw", "raw-data/customers/__x__.csv"),
    ("raw", "raw-data/customers/..csv"),
    ("raw", "raw-data/customers/no-extension"),
    ("raw", "raw-data/customers/tab\tand\nnewline.ndjson"),
    ("raw", "raw-data/customers/" + "n" * 300 + "x.csv"),
    ("raw", "raw-data/customers/" + "é" * 150 + ".csv"),
    ("raw", "raw-data/customers/" + "n" * 182 + "____.csv"),
    ("b", "k"),
]


def test_fnv1a64_reference_values():
    # FNV-1a 64 reference values, as etl-aws's stable_hash test.
    assert ids.fnv1a64(b"") == 0xCBF29CE484222325
    assert ids.fnv1a64(b"a") == 0xAF63DC4C8601EC8C


def test_output_ids_as_s3_processor_tests_state_them():
    a = ids.output_id("raw", "raw-data/customers/a b.csv")
    assert a.startswith("a_b.csv-")
    assert a.endswith(f"-{ids.fnv1a64(b'raw/raw-data/customers/a b.csv'):016x}")
    assert a != ids.output_id("raw", "raw-data/customers/2024/a b.csv")
    assert a != ids.output_id("other", "raw-data/customers/a b.csv")
    x = ids.output_id("raw", "raw/" + "n" * 300 + "x.csv")
    y = ids.output_id("raw", "raw/" + "n" * 300 + "y.csv")
    assert len(x) <= 200 and x != y and x == ids.source_id(x)


def test_output_ids_equal_the_rust_ones():
    etl = str(etl_binary())
    for bucket, key in TRICKY_KEYS:
        rust = subprocess.run([etl, "output-id", "--bucket", bucket, "--key", key],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert ids.output_id(bucket, key) == rust, (bucket, key)


def test_arguments_as_glue_passes_them():
    args = job.parse_args(["--JOB_NAME", "j", "--JOB_RUN_ID", "jr_1", "--enable-metrics",
                           "--items", '[{"bucket": "b", "key": "k"}]', "--output_prefix=p/",
                           "--glue_database", ""])
    assert args["JOB_RUN_ID"] == "jr_1" and args["enable-metrics"] == ""
    assert json.loads(args["items"]) == [{"bucket": "b", "key": "k"}]
    assert args["output_prefix"] == "p/" and args["glue_database"] == ""


def test_items_are_checked():
    base = dict(job.DEFAULTS)
    assert job.read_items({**base, "items": '[{"bucket": "b", "key": "k", "x": 1}]'}, None) == [
        {"bucket": "b", "key": "k", "x": 1}]
    for bad, says in [("", "no files"), ("{}", "JSON list"), ("[1]", "item 0"), ("[", "not JSON")]:
        with pytest.raises(job.JobFailed, match=says):
            job.read_items({**base, "items": bad}, None)


def test_the_longest_source_prefix_owns_a_key():
    plans = [{"dataset": "a", "source": {"prefix": "raw/"}},
             {"dataset": "b", "source": {"prefix": "raw/b/"}}]
    assert job.plan_for(plans, "raw/b/x.csv")["dataset"] == "b"
    assert job.plan_for(plans, "raw/x.csv")["dataset"] == "a"
    assert job.plan_for(plans, "other/x.csv") is None


def test_the_package_carries_every_specs_plan_and_loads_from_the_zip(tmp_path):
    """The zip `make glue-package` builds, imported as Glue imports --extra-py-files."""
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "infra" / "glue"))
    import package

    out = tmp_path / "etl_spark.zip"
    datasets = package.build(str(etl_binary()), out)
    specs = sorted((repo / "infra" / "pipelines").glob("*.y*ml"))
    assert len(datasets) == len(specs) >= 2
    loaded = subprocess.run(
        [sys.executable, "-c", "import json; from etl_spark import job; "
         "print(json.dumps([p['dataset'] for p in job.load_plans()])); print(job.__file__)"],
        capture_output=True, text=True, env={"PYTHONPATH": str(out)}, cwd=tmp_path, check=True)
    names, where = loaded.stdout.splitlines()
    assert sorted(json.loads(names)) == datasets and where.startswith(str(out))
    for d in datasets:
        plan = json.loads(__import__("zipfile").ZipFile(out).read(f"etl_spark/plans/{d}.json"))
        assert all("glue_type" in c and "dtype" in c for c in plan["columns"]), d
    # Byte-for-byte the same when rebuilt: uploads are keyed by content.
    again = tmp_path / "again.zip"
    package.build(str(etl_binary()), again)
    assert again.read_bytes() == out.read_bytes()


def test_manifest_files_and_layout():
    cfg = publish.Settings("lake", "q", "processed/", "quarantine/", "manifests/")
    layout = publish.Layout(cfg, "customers", "a.csv-0123")
    assert layout.intent() == ("lake", "manifests/_publishing/customers/a.csv-0123.json")
    assert layout.quarantine() == ("q", "quarantine/customers/a.csv-0123.parquet")
    assert layout.is_own_file(("lake", "old/customers/a.csv-0123.parquet"))
    assert not layout.is_own_file(("other", "processed/customers/a.csv-0123.parquet"))
    assert not layout.is_own_file(("lake", "processed/customers/a.csv-0123.parquet.bak"))
    m = {"outputs": [{"path": "s3://lake/processed/c/country=US/x.parquet"}],
         "quarantine": {"path": "s3://q/quarantine/c/x.parquet"}}
    assert publish.manifest_files(m) == [("lake", "processed/c/country=US/x.parquet"),
                                         ("q", "quarantine/c/x.parquet")]
    for bad, says in [({"quarantine": None}, "outputs"), ({"outputs": [{"rows": 1}]}, "outputs[0]"),
                      ({"outputs": [{"path": "x.parquet"}]}, "outputs[0]"),
                      ({"outputs": [], "quarantine": {}}, "quarantine")]:
        with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
            publish.manifest_files(bad)


def test_catalog_evolution_appends_and_refuses_type_changes():
    have = [{"Name": "id", "Type": "bigint"}, {"Name": "old", "Type": "string"}]
    keys = [{"Name": "country", "Type": "string"}]
    cols, added = catalog.plan_schema("db.t", have, keys, [{"Name": "ID", "Type": "BIGINT"},
                                                          {"Name": "new", "Type": "decimal(10, 2)"}], keys)
    assert [c["Name"] for c in cols] == ["id", "old", "new"] and added == ["new"]
    with pytest.raises(catalog.CatalogError, match="column id is bigint"):
        catalog.plan_schema("db.t", have, keys, [{"Name": "id", "Type": "string"}], keys)
    with pytest.raises(catalog.CatalogError, match="partition keys"):
        catalog.plan_schema("db.t", have, keys, [], [])
    assert catalog.partition_location("s3://b/p/", ["k"], ["a/b=c d"]) == "s3://b/p/k=a%2Fb%3Dc d/"


def test_alert_wording_and_subject():
    m = {"dataset": "customers", "source": {"name": "s3://b/k"}, "status": "quality_failed",
         "counts": {"rows_in": 3, "rows_out": 1, "duplicates": 1, "quarantined": 1},
         "quality": {"score": 0.5, "min_score": 0.8, "rules": [
             {"rule": "RowCount > 5", "actual": 1.0, "required": 5.0, "passed": False, "action": "fail"},
             {"rule": "x", "actual": 1.0, "required": 1.0, "passed": True, "action": "alert"}]}}
    subject, message = job.alert_text(m)
    assert subject == "ETL quality alert: customers score 0.50"
    assert "status: QualityFailed\nquality score 0.50 (minimum 0.80)\n" in message
    assert message.endswith("failed rules:\n- RowCount > 5 (actual 1.0000, required 5.0000, action Fail)\n")
    assert job.sanitize_subject("a\n b ☃" + "x" * 200).startswith("a b ?xxx")
    assert len(job.sanitize_subject("x" * 200)) == 99
