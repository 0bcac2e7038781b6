"""Whole specs on generated dirty inputs: the engine against a model computed in DuckDB.

Two specs together use every step kind (deduplicate on all columns and by key, fill_null,
filter, derive sql/case/split/regex_replace, join with a reference CSV, cast,
processed_at), every quality rule kind and action, every type (a date with and without a
format, a timestamp with and without one) and required columns. Each runs on a CSV, an
NDJSON file and a JSON array generated from one seed (SPEC_SEED), and the first also on a
gzipped CSV; a third run adds a `fail` rule that cannot pass. The model in
spec_helpers.py reads the raw file and computes the expected rows, quarantine reasons and
manifest from README's rules; every mismatch is logged in build/spec-findings.md.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest

import spec_helpers as sh

RUNS = [(sh.ORDERS, f) for f in ("csv", "ndjson", "json", "csv.gz", "crlf.csv.gz", "objects.json")] + [
    (sh.EVENTS, f) for f in ("csv", "ndjson", "json", "tsv")
] + [(sh.EXPRS, f) for f in ("csv", "ndjson", "json")] + [(sh.LITERALS, "csv")]
LABELS = [f"{c.name}/{f}" for c, f in RUNS]
WORK = sh.REPO / "build" / "spec-runs"


@pytest.fixture(scope="module")
def outcomes():
    done = {f"{c.name}/{f}": sh.run_case(c, f, WORK) for c, f in RUNS}
    done["events-fail/csv"] = sh.run_case(sh.failing_variant(sh.EVENTS), "csv", WORK / "fail")
    # Small batches on two workers: dedup, order and lines across batch boundaries.
    for case, fmt in ((sh.ORDERS, "csv"), (sh.EVENTS, "ndjson")):
        o = sh.run_case(case, fmt, WORK, extra=("--batch-size", "7", "--threads", "2"), tag="@batch7")
        done[o.label] = o
    # A header and no rows: RowCount (action fail) fails, nothing is published.
    o = sh.run_case(sh.ORDERS, "csv", WORK, rows=0, tag="@empty")
    done[o.label] = o
    yield done
    for o in done.values():
        o.con.close()


def check(section: str, outcomes, diff, labels, summary=None) -> dict[str, list[str]]:
    per = {label: diff(outcomes[label]) for label in labels}
    lines = [ln for v in per.values() for ln in v]
    if summary is not None:
        lines = summary([outcomes[label] for label in labels])
    rows = sum(o.expected.counts["rows_in"] for o in outcomes.values())
    total = sum(len(v) for v in per.values())
    sh.record(section, lines, f"{len(labels)} runs, {rows} input records in all; "
                              f"{total} mismatches.")
    return per


@pytest.fixture(scope="module")
def counts(outcomes):
    return check("manifest counts", outcomes, sh.diff_counts, list(outcomes))


@pytest.fixture(scope="module")
def rules(outcomes):
    return check("quality rules", outcomes, sh.diff_rules, list(outcomes))


@pytest.fixture(scope="module")
def output(outcomes):
    return check("output rows", outcomes, sh.diff_output, list(outcomes))


@pytest.fixture(scope="module")
def codes(outcomes):
    return check("quarantine codes and lines", outcomes, sh.diff_quarantine_codes, list(outcomes))


@pytest.fixture(scope="module")
def texts(outcomes):
    return check("quarantine text as read", outcomes, sh.diff_quarantine_text, list(outcomes),
                 sh.summarize_text)


def _fail(found: list[str]) -> str:
    return f"{len(found)} mismatches:\n" + "\n".join(found[:30])


ALL = LABELS + ["events-fail/csv", "orders/csv@batch7", "events/ndjson@batch7", "orders/csv@empty"]


@pytest.mark.parametrize("label", ALL)
def test_manifest_counts_match_the_model(counts, label):
    assert not counts[label], _fail(counts[label])


@pytest.mark.parametrize("label", ALL)
def test_quality_rule_results_match_the_model(rules, label):
    assert not rules[label], _fail(rules[label])


@pytest.mark.parametrize("label", ALL)
def test_output_rows_match_the_model_per_partition(output, label):
    assert not output[label], _fail(output[label])


@pytest.mark.parametrize("label", ALL)
def test_quarantine_lines_and_codes_match_the_model(codes, label):
    assert not codes[label], _fail(codes[label])


# README: quarantine files hold "the text that was read", for rows rejected while reading
# and for rows a step or rule rejected after typing, and a ragged row's `_raw` is the record
# as it stood in the file.
@pytest.mark.parametrize("label", ALL)
def test_quarantine_holds_the_text_that_was_read(texts, label):
    assert not texts[label], _fail(texts[label])


def test_a_failing_fail_rule_publishes_nothing(outcomes):
    o = outcomes["events-fail/csv"]
    assert o.engine.rc == 5, f"exit {o.engine.rc}: {o.engine.stderr}"
    assert o.expected.status == "quality_failed"
    assert not list((o.engine.out / o.case.name).rglob("*.parquet"))


def test_processed_at_is_the_run_start(outcomes):
    for label in ("orders/csv", "orders/json"):
        o = outcomes[label]
        assert o.processed_at is not None, f"{label}: no processed_at value in the output"
        # Parquet keeps microseconds; the clock readings around the run bound it.
        assert o.engine.before.replace(microsecond=0) <= o.processed_at <= o.engine.after, (
            f"{label}: processed_at {o.processed_at} outside the run "
            f"{o.engine.before}..{o.engine.after}")


def test_generated_inputs_exercise_every_reject_and_step(outcomes):
    """The inputs hold each defect the specs can reject, so every check above can fail."""
    for case, fmts in ((sh.ORDERS, ("csv", "ndjson", "json")), (sh.EVENTS, ("csv", "ndjson"))):
        for fmt in fmts:
            o = outcomes[f"{case.name}/{fmt}"]
            c = o.expected.counts
            reasons = set(c["quarantined_by_reason"])
            want = {"malformed_record"} | {
                f"filter:{s[1]}" for s in case.steps if s[0] == "filter"} | {
                f"invalid_cast:{s[1]}" for s in case.steps if s[0] == "cast"} | {
                f"missing_required:{col.name}" for col in case.columns if col.required}
            want |= {f"rule:{r['rule']}:{r['column']}" for r in case.rules
                     if r["rule"] in ("IsComplete", "ColumnValues")
                     and r.get("action", "quarantine") == "quarantine"}
            missing = want - reasons
            assert not missing, f"{o.label}: the input never triggers {sorted(missing)}"
            invalid = {r for r in reasons if r.startswith("invalid_value:")}
            assert len(invalid) >= 4, f"{o.label}: few invalid values: {sorted(invalid)}"
            assert c["duplicates"] > 5, f"{o.label}: {c['duplicates']} duplicates"
            assert c["rows_out"] > 50, f"{o.label}: only {c['rows_out']} rows out"
            parts = o.expected.partitions
            assert len(parts) >= 3, f"{o.label}: {len(parts)} partitions"


@pytest.mark.parametrize("fmt,extra", [
    ("csv", ()), ("ndjson", ()), ("ndjson", ("--batch-size", "5", "--threads", "2")),
], ids=["csv", "ndjson", "ndjson-batch5"])
def test_a_failing_cast_names_the_first_bad_record(fmt, extra):
    """The first record (file order) whose `code` the CAST refuses stops the run with its line,
    whatever the batches and workers."""
    case = sh.CAST_FAILS
    name, writer, splitter = sh.FORMATS[fmt]
    d = WORK / f"castfail-{fmt}{len(extra)}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    # More bad codes than the orders inputs hold, so some record surely fails.
    records = sh.generate(case, sh.SEED + 7, 120, now)
    for i, r in enumerate(records):
        if i % 17 == 16:
            r["code"] = ["A12", "1.0", "99999999999999999999"][i % 3]
    text = writer(case, records, sh.SEED)
    (d / name).write_text(text, encoding="utf-8")
    (d / "spec.yaml").write_text(sh.spec_yaml(case), encoding="utf-8")
    model = sh.Model(case, splitter(text), d, now)
    try:
        bad = model.first_bad_text(2, "code", "bigint")
    finally:
        model.close()
    assert bad is not None, "the input holds no code the CAST refuses"
    line, value = bad
    run = sh.run_engine(d / "spec.yaml", d / name, d / "out", extra)
    found = [] if run.rc == 4 and f"{name} line {line}: steps[2].derive" in run.stderr and (
        f"'{value}'" in run.stderr) else [
        f"castfail/{fmt}: expected exit 4 naming {name} line {line}, steps[2].derive and "
        f"'{value}'; got exit {run.rc}: {run.stderr.strip()[-400:]}"]
    sh.record(f"failing CAST names the record ({fmt} {' '.join(extra)})".replace(" )", ")"), found,
              f"first bad record: line {line}.")
    assert not found, found[0]
    assert not list((d / "out" / case.name).rglob("*.parquet")), "data published by a failed run"
