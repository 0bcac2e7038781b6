"""The transform: typed reading, steps, quality rules, on one SparkSession, as the plan
(`etl plan --target spark`) states them. The plan's SQL decides every value; this module
only sequences the steps and counts, as the engine's stages do (shared/etl-core/src/
stages.rs, steps.rs, quality.rs): every row read is written, dropped as a duplicate, or
quarantined with the first reason that refused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from . import kernels, partitions
from .reader import Input

LINE = "_source_line"
# Internal columns: the text that was read, per schema column, for quarantine rows.
TEXT = "__text_{}"
RESERVED_PREFIX = "__"


# How Parquet is written, as the engine writes it: microsecond timestamps, and dates and
# times in the proleptic Gregorian calendar whatever their year (no rebasing to Julian).
IO_CONF = {
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
}


class RecordError(Exception):
    """A value refused by a strict expression: the run fails naming the line (exit 4)."""


@dataclass
class Result:
    data: DataFrame | None
    quarantine: DataFrame | None
    rows_in: int = 0
    rows_out: int = 0
    duplicates: int = 0
    by_code: dict[str, int] = field(default_factory=dict)
    quality: dict = field(default_factory=dict)


def session(plan: dict, master: str = "local[1]") -> SparkSession:
    builder = SparkSession.builder.master(master).appName("etl-spark")
    for k, v in plan["spark_conf"].items():
        builder = builder.config(k, v)
    spark = builder.config("spark.ui.enabled", "false") \
        .config("spark.ui.showConsoleProgress", "false").getOrCreate()
    return configure(spark, plan)


def configure(spark: SparkSession, plan: dict) -> SparkSession:
    """Applies the plan's settings and functions to a session (shared by many plans)."""
    if plan.get("version") != 1 or plan.get("target") != "spark":
        raise ValueError("not a version 1 Spark plan: run `etl plan --target spark`")
    for k, v in plan["spark_conf"].items():
        spark.conf.set(k, v)
    for k, v in IO_CONF.items():
        spark.conf.set(k, v)
    kernels.register(spark, plan["udfs"])
    return spark


def record_schema(width: int) -> T.StructType:
    """The record frame: line, malformed reason, raw record, and per schema column its text
    and whether it was a non-string JSON value."""
    fields = [T.StructField(LINE, T.LongType(), False),
              T.StructField("__malformed", T.StringType()),
              T.StructField("_raw", T.StringType())]
    fields += [T.StructField(TEXT.format(i), T.StringType()) for i in range(width)]
    fields += [T.StructField(f"__json_{i}", T.BooleanType()) for i in range(width)]
    return T.StructType(fields)


def _records_frame(spark: SparkSession, plan: dict, source: Input) -> DataFrame:
    if source.records is None:  # read on the executors (etl_spark.split)
        return source.frame
    width = len(plan["schema"])
    rows = [r.row(width) for r in source.records]
    return spark.createDataFrame(rows, record_schema(width))


def _typed(df: DataFrame, plan: dict) -> DataFrame:
    """Adds each schema column typed, and `__code`: the first field that refused the row."""
    nulls = plan["source"]["null_values"]
    mapped = []
    for i, c in enumerate(plan["schema"]):
        t = F.col(TEXT.format(i))
        is_null = t.isNull() | (t == "")
        if nulls:
            is_null = is_null | t.isin(nulls)
        # null_values apply to text, not to JSON numbers or booleans.
        mapped.append(F.when(F.col(f"__json_{i}") | ~is_null, t).alias(c["name"]))
    base = df.select(LINE, "__malformed", "_raw", *[TEXT.format(i) for i in range(len(mapped))],
                     *[f"__json_{i}" for i in range(len(mapped))], *mapped)
    typed = []
    code = None
    for i, c in enumerate(plan["schema"]):
        name, ty = c["name"], c["type"]
        text = F.col(f"`{name}`")
        value = F.expr(c["parse"])
        invalid = text.isNotNull() & value.isNull()
        json_flag = F.col(f"__json_{i}")
        if ty == "boolean":
            invalid = invalid | (json_flag & ~text.isin("true", "false"))
        elif ty in ("date", "timestamp"):
            invalid = invalid | (json_flag & text.isNotNull())
        cases = [(invalid, f"invalid_value:{name}")]
        if c["required"]:
            cases.append((text.isNull(), f"missing_required:{name}"))
        for cond, label in cases:
            code = F.when(cond, F.lit(label)) if code is None else code.when(cond, F.lit(label))
        typed.append(value.alias(name))
    code = F.lit(None).cast("string") if code is None else code
    width = len(plan["schema"])
    keep = [LINE, "__malformed", "_raw", *[TEXT.format(i) for i in range(width)],
            *[f"__json_{i}" for i in range(width)]]
    return base.select(*keep, code.alias("__code"), *typed)


def _checkpoint(df: DataFrame, label: str, text: str, name: str) -> DataFrame:
    """Evaluates a step that can fail now, so a refused value names its step and line: the
    first failing line is found by bisection over lines, as the engine finds its row."""
    try:
        return df.localCheckpoint(eager=True)
    except Exception as e:  # Spark raises Py4J or its own errors, by version
        message = _spark_message(e)
        lines = sorted(r[0] for r in df.select(LINE).collect())
        lo, hi = 0, len(lines)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                df.filter(F.col(LINE) <= lines[mid - 1]).localCheckpoint(eager=True)
                lo = mid
            except Exception:  # noqa: BLE001 - any failure means the prefix fails
                hi = mid
        line = lines[hi - 1] if lines else 0
        what = f"{label} `{text}`" if text else label
        raise RecordError(f"{name} line {line}: {what}: {message}") from e


def _spark_message(e: Exception) -> str:
    text = str(e)
    for marker in ("[USER_RAISED_EXCEPTION] ", "ArithmeticException: ", "SparkArithmeticException: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def run(spark: SparkSession, plan: dict, source: Input, name: str, now_us: int,
        checkpoint: bool = True) -> Result:
    """Runs the plan on one input. With `checkpoint`, each step that can refuse a value is
    evaluated on its own, so a refusal raises RecordError naming the step and line;
    without, steps stay lazy (the fast path) and a refusal is a Spark error."""
    records = _records_frame(spark, plan, source)
    # Typing calls Python functions on every value: materialized once, so the quarantine's
    # count and write and every later pass read the typed rows instead of typing again.
    typed = _typed(records, plan).localCheckpoint(eager=True)
    rejects: list[tuple[DataFrame, str | None]] = []
    malformed = typed.filter(F.col("__malformed").isNotNull())
    rejects.append((malformed.select("*", F.lit("malformed_record").alias("__rc"),
                                     F.col("__malformed").alias("__rr")), None))
    rows = typed.filter(F.col("__malformed").isNull())
    refused = rows.filter(F.col("__code").isNotNull())
    rejects.append((refused.withColumn("__rc", F.col("__code")).withColumn("__rr", F.lit(None).cast("string")), "typing"))
    rows = rows.filter(F.col("__code").isNull())
    width = len(plan["schema"])
    internal = [LINE, "__malformed", "_raw", "__code", *[TEXT.format(i) for i in range(width)],
                *[f"__json_{i}" for i in range(width)]]
    duplicates = 0
    for step in plan["steps"]:
        kind = step["kind"]
        if kind == "deduplicate":
            keys = step["columns"] or [c for c in rows.columns if c not in internal]
            w = Window.partitionBy(*[F.col(f"`{k}`") for k in keys]).orderBy(LINE)
            ranked = rows.withColumn("__n", F.row_number().over(w)).localCheckpoint(eager=True)
            duplicates += ranked.filter(F.col("__n") > 1).count()
            rows = ranked.filter(F.col("__n") == 1).drop("__n")
        elif kind == "fill_null":
            for col, sql in step["values"].items():
                rows = rows.withColumn(col, F.coalesce(F.col(f"`{col}`"), F.expr(sql)))
        elif kind == "filter":
            rows = rows.withColumn("__keep", F.coalesce(F.expr(step["sql"]), F.lit(False)))
            if checkpoint and step.get("can_fail", True):
                rows = _checkpoint(rows, step["label"], step["text"], name)
            out = rows.filter(~F.col("__keep")).drop("__keep")
            rejects.append((out.withColumn("__rc", F.lit(step["code"]))
                               .withColumn("__rr", F.lit(step["reason"])), None))
            rows = rows.filter(F.col("__keep")).drop("__keep")
        elif kind == "derive":
            rows = rows.withColumn(step["column"], F.expr(step["sql"]).cast(step["type"]))
            if checkpoint and step.get("can_fail", True):
                rows = _checkpoint(rows, step["label"], step["text"], name)
        elif kind == "cast":
            col = step["column"]
            before = F.col(f"`{col}`")
            rows = rows.withColumn("__cast", F.expr(step["sql"]).cast(step["to"]))
            bad = before.isNotNull() & F.col("__cast").isNull()
            if step["from"] == "string":
                reason = F.concat(F.lit(f"field '{col}': "),
                                  F.expr(f"etl_parse_error(`{col}`, '{step['to']}', CAST(NULL AS string))"))
            else:
                shown = F.expr(f"etl_double_text(`{col}`)") if step["from"] == "double" \
                    else before.cast("string")
                reason = F.concat(F.lit(f"field '{col}': "), shown,
                                  F.lit(f" cannot be cast to {step['to']}"))
            out = rows.filter(bad).withColumn("__rc", F.lit(step["code"])).withColumn("__rr", reason)
            rejects.append((out.drop("__cast"), None))
            rows = rows.filter(~bad).withColumn(col, F.col("__cast")).drop("__cast")
        elif kind == "processed_at":
            rows = rows.withColumn(step["column"], F.timestamp_micros(F.lit(now_us)))
        else:
            raise ValueError(f"unknown step kind {kind}")
    # As the engine: values too long for a directory name leave before the quality rules.
    rows, long_values = partitions.reject_long(rows, plan)
    rejects.extend(long_values)
    rows, quality_rejects, quality = _quality(rows, plan, source, now_us)
    rejects.extend(quality_rejects)
    quarantine = _quarantine(spark, plan, rejects)
    by_code: dict[str, int] = {}
    if quarantine is not None:
        for r in quarantine.groupBy("_reject_code").count().collect():
            by_code[r[0]] = r[1]
    columns = [c["name"] for c in plan["columns"]]
    data = rows.select(*[F.col(f"`{c}`") for c in columns])
    rows_out = quality.pop("__rows_out")
    return Result(data, quarantine, source.rows_in, rows_out, duplicates, by_code, quality)


def _quality(rows: DataFrame, plan: dict, source: Input, now_us: int):
    """Row-level rules on the rows that reach them (a row failing a `quarantine` rule goes
    with the first such rule), then dataset-level rules on the rows kept: two passes over
    the data, each one aggregation."""
    rules = plan["quality"]["rules"]
    row_rules = [(i, r) for i, r in enumerate(rules) if r["pass_sql"]]
    rejects = []
    passes = [F.coalesce(F.expr(r["pass_sql"]), F.lit(True)).alias(f"__rule{i}")
              for i, r in row_rules]
    rows = rows.select("*", *passes).localCheckpoint(eager=True)
    aggs = [F.count(F.lit(1)).alias("n")]
    aggs += [F.sum(F.col(f"__rule{i}").cast("long")).alias(f"p{i}") for i, _ in row_rules]
    first = rows.agg(*aggs).collect()[0]
    evaluated = first["n"]
    stats = {i: (evaluated, first[f"p{i}"] or 0) for i, _ in row_rules}
    taken = F.lit(False)
    rule_columns = [f"__rule{j}" for j, _ in row_rules]
    for i, r in row_rules:
        if r["action"] == "quarantine":
            fails_here = ~F.col(f"__rule{i}") & ~taken
            out = rows.filter(fails_here).withColumn("__rc", F.lit(r["code"])) \
                .withColumn("__rr", F.lit(r["reason"]))
            rejects.append((out.drop(*rule_columns), None))
            taken = taken | ~F.col(f"__rule{i}")
    rows = rows.filter(~taken).drop(*rule_columns)
    # Dataset-level rules over the rows kept, in one aggregation.
    aggs = [F.count(F.lit(1)).alias("n")]
    for i, r in enumerate(rules):
        col, kind = r["column"], r["rule"]
        if i in stats or col is None or col not in rows.columns:
            continue
        c = F.col(f"`{col}`")
        if kind == "Completeness":
            aggs.append(F.count(c).alias(f"p{i}"))
        elif kind in ("Uniqueness", "IsUnique"):
            aggs += [F.count(c).alias(f"e{i}"), F.countDistinct(c).alias(f"d{i}")]
        elif kind == "DataFreshness":
            cutoff = now_us - (r["max_age_us"] or 0)
            fresh = F.unix_micros(c.cast("timestamp")) >= cutoff
            aggs.append(F.sum(fresh.cast("long")).alias(f"p{i}"))
    kept = rows.agg(*aggs).collect()[0].asDict()
    rows_out = kept["n"]
    known = list(source.found) + [c["name"] for c in plan["columns"]]
    results = []
    for i, r in enumerate(rules):
        threshold = 1.0 if r["threshold"] is None else r["threshold"]
        kind, col = r["rule"], r["column"]
        ev, passing, repeats = 0, 0, 0
        if i in stats:
            ev, passing = stats[i]
        elif rows_out > 0:
            if f"p{i}" in kept:
                ev, passing = rows_out, kept[f"p{i}"] or 0
            if f"e{i}" in kept:
                ev, repeats = kept[f"e{i}"], kept[f"e{i}"] - kept[f"d{i}"]
        share = (lambda p, o: 1.0 if o == 0 else p / o)
        if kind in ("IsComplete", "ColumnValues", "Completeness", "DataFreshness"):
            actual = share(passing, ev)
            required, passed, failing = threshold, actual >= threshold, ev - passing
        elif kind in ("IsUnique", "Uniqueness"):
            actual = share(ev - repeats, ev)
            required = 1.0 if kind == "IsUnique" else threshold
            passed, failing = actual >= required, 0
        elif kind == "ColumnExists":
            passed = col in known
            actual, required, failing = float(passed), 1.0, 0
        else:  # RowCount
            ok = (r["min"] is None or rows_out >= r["min"]) and (r["max"] is None or rows_out <= r["max"])
            actual, required, passed, failing = float(rows_out), float(r["min"] or 0), ok, 0
        if kind in ("RowCount", "ColumnExists"):
            ev = rows_out
        results.append({"rule": r["description"], "kind": kind, "column": col,
                        "action": r["action"], "actual": actual, "required": required,
                        "passed": passed, "failing_rows": failing, "evaluated_rows": ev})
    score = 1.0 if not results else sum(r["passed"] for r in results) / len(results)
    min_score = plan["quality"]["min_score"]
    passed = all(r["passed"] or r["action"] != "fail" for r in results)
    alert = (min_score is not None and score < min_score) or any(
        not r["passed"] and r["action"] == "alert" for r in results)
    report = {"score": score, "min_score": min_score, "passed": passed, "alert": alert,
              "rules": results, "__rows_out": rows_out}
    return rows, rejects, report


def _quarantine(spark: SparkSession, plan: dict, rejects) -> DataFrame | None:
    """Every rejected row: source columns as read, line, code, reason, raw record."""
    names = [c["name"] for c in plan["schema"]]
    parts = []
    for df, how in rejects:
        if how == "typing":
            reason = _typing_reason(plan)
        else:
            reason = F.col("__rr")
        parts.append(df.select(
            *[F.col(TEXT.format(i)).alias(n) for i, n in enumerate(names)],
            F.col(LINE), F.col("__rc").alias("_reject_code"), reason.alias("_reject_reason"),
            F.col("_raw"),
        ))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    # Materialized once: counted by reason, then written in line order (stage.py).
    return out.localCheckpoint(eager=True)


def _typing_reason(plan: dict):
    """The reason of a typing refusal, from its code (the engine's words)."""
    expr = None
    for i, c in enumerate(plan["schema"]):
        name, ty = c["name"], c["type"]
        text = F.col(TEXT.format(i))
        if ty == "string":
            parsed = F.lit(None).cast("string")
        else:
            parsed = F.expr(f"etl_parse_error({TEXT.format(i)}, '{ty}', {_lit(c['format'])})")
        # A JSON value that is not a string is refused as its JSON text.
        as_json = F.concat(text, F.lit(f" is not a valid {ty}"))
        json_value = F.col(f"__json_{i}")
        if ty.startswith("decimal"):
            # A JSON number is read by the decimal parser (quoted in its message).
            json_value = json_value & ~text.rlike("^-?[0-9]")
        why = F.when(json_value, as_json).otherwise(F.coalesce(parsed, as_json))
        invalid = F.concat(F.lit(f"field '{name}': "), why)
        missing = F.lit(f"field '{name}' is required but empty")
        cases = [(f"missing_required:{name}", missing)]
        if ty != "string":
            cases.append((f"invalid_value:{name}", invalid))
        for code, reason in cases:
            cond = F.col("__rc") == code
            expr = F.when(cond, reason) if expr is None else expr.when(cond, reason)
    return F.lit(None).cast("string") if expr is None else expr


def _lit(v: str | None) -> str:
    if v is None:
        return "CAST(NULL AS string)"
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
