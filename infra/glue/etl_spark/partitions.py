"""Partition directories named as the engine names them (shared/etl-core/src/write.rs), not
as Spark's partitionBy would: `<key>=<value>` with the engine's escaping (its character set,
percent-encoded UTF-8 bytes), NULL as `__HIVE_DEFAULT_PARTITION__` but an empty string as
`key=` (Spark turns both into the default partition), and a value whose directory name would
pass the engine's limit quarantined as `partition_value_too_long:<key>`. The plan's
`output.partition` carries the engine's constants, so they are stated once, in Rust.

The writer partitions by one tag column (`tag`), whose values need no escaping, and renames
each tag's directory to the engine's name.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

TAG = "__partition"


class TooManyPartitions(ValueError):
    """More partitions in one input than the engine writes: a spec error, as in `etl run`."""


def escape(text: str, chars: str) -> str:
    """write::escape_path: each character of `chars` as `%XX` per UTF-8 byte."""
    return "".join("".join(f"%{b:02X}" for b in c.encode()) if c in chars else c for c in text)


def _escaped(value: Column, chars: str) -> Column:
    """`escape` in Spark SQL: '%' first, so the '%' it writes are not escaped again; the
    replacements only run on the rare value that has one of the characters."""
    out = value
    for c in sorted(chars, key=lambda c: c != "%"):
        out = F.replace(out, F.lit(c), F.lit(escape(c, chars)))
    pattern = "[" + "".join(f"\\x{{{ord(c):X}}}" for c in chars) + "]"
    return F.when(value.rlike(pattern), out).otherwise(value)


def _text(name: str, ty: str) -> Column:
    """A value as the engine's path text (write::partition_value: polars' cast to text)."""
    col = F.col(f"`{name}`")
    if ty == "string":
        return col
    if ty == "double":
        # The engine's double text with polars' exponent: `1e-7`, not `1e-07`.
        # polars spells NaN `NaN`, whatever its sign bit.
        text = F.regexp_replace(F.expr(f"etl_double_text(`{name}`)"), "e([+-])0([0-9])$", "e$1$2")
        return F.when(F.isnan(col), F.lit("NaN")).otherwise(text)
    if ty == "timestamp":
        # The engine's timestamps are UTC-aware: polars prints the offset.
        return F.concat(F.date_format(col, "yyyy-MM-dd HH:mm:ss.SSSSSS"), F.lit("+00:00"))
    return col.cast("string")


def _types(plan: dict) -> dict[str, str]:
    return {c["name"]: c["type"] for c in plan["columns"]}


def reject_long(rows: DataFrame, plan: dict) -> tuple[DataFrame, list[tuple[DataFrame, None]]]:
    """write::reject_long_partitions: key by key, rows whose `key=value` directory name
    would be longer than the limit leave as rejects (`__rc`, `__rr`). Only text is long."""
    part = plan["output"]["partition"]
    limit, chars = part["max_dir_bytes"], part["escape"]
    types = _types(plan)
    rejects = []
    for key in plan["output"]["partition_by"]:
        if types[key] != "string":
            continue
        room = limit - min(len(escape(key, chars).encode()) + 1, limit)
        size = F.coalesce(F.octet_length(_escaped(F.col(f"`{key}`"), chars)), F.lit(0))
        rows = rows.withColumn("__dir_len", size)
        long = F.col("__dir_len") > room
        reason = F.concat(F.lit(f"partition value of `{key}` is "), F.col("__dir_len").cast("string"),
                          F.lit(f" bytes as a path ({room} fit in a {limit}-byte directory name)"))
        out = rows.filter(long).withColumn("__rc", F.lit(f"partition_value_too_long:{key}")) \
            .withColumn("__rr", reason).drop("__dir_len")
        rejects.append((out, None))
        rows = rows.filter(~long).drop("__dir_len")
    return rows, rejects


def tag(df: DataFrame, plan: dict) -> tuple[DataFrame, dict[str, str]]:
    """The data without its partition columns plus TAG, and TAG value -> the engine's
    relative directory (`country=US/segment=High`) of every partition in `df`."""
    out = plan["output"]
    part, keys, types = out["partition"], out["partition_by"], _types(plan)
    chars = part["escape"]
    dirs = [F.concat(F.lit(escape(k, chars) + "="),
                     F.coalesce(_escaped(_text(k, types[k]), chars), F.lit(part["null"])))
            for k in keys]
    rel = F.concat_ws("/", *dirs)
    # md5's hex needs no escaping in a path; two directories with one hash are refused below.
    tagged = df.withColumn("__dir", rel).withColumn(TAG, F.md5(F.col("__dir")))
    found = tagged.select(TAG, "__dir").distinct().limit(part["max_partitions"] + 1).collect()
    if len(found) > part["max_partitions"]:
        raise TooManyPartitions(
            f"output.partition_by: more than {part['max_partitions']} partitions in one input: "
            "partition by lower-cardinality columns")
    mapping = {r[0]: r[1] for r in found}
    if len(mapping) != len(found):
        raise RuntimeError("two partition directories share a tag")
    return tagged.drop("__dir", *keys), mapping
