"""The customers transform (infra/pipelines/customers.yaml) written idiomatically in each
peer engine, for tests/bench/run.sh. Each writes hive-partitioned Parquet at zstd level 3
(the engine's level, and zstd's, polars' and DuckDB's default; pyarrow's is 1) and prints
{"rows_out": N}. Semantics match the Rust engine on `etl generate` data: unparseable
purchase amounts rejected, exact duplicates dropped, name/amount filled, negative amounts
and emails without '@' dropped, rows without an id or with an invalid email dropped.

usage: peers.py ENGINE INPUT.csv OUTPUT_DIR THREADS
"""

import json
import os
import sys

EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
CLEAN = r"[^A-Za-z0-9 ]"
ZSTD_LEVEL = 3


def run_pandas(src: str, out: str, threads: int) -> int:
    import numpy as np
    import pandas as pd

    df = pd.read_csv(src)
    pa = pd.to_numeric(df["purchase_amount"], errors="coerce")
    df = df[~(pa.isna() & df["purchase_amount"].notna())].assign(purchase_amount=pa)
    df = df.drop_duplicates()
    df = df.fillna({"name": "Unknown", "amount": 0})
    df = df[df["amount"] >= 0]
    df = df[df["email"].str.contains("@", na=False)]
    df["customer_segment"] = np.select(
        [df["purchase_amount"] > 500, df["purchase_amount"] > 100], ["High", "Medium"], "Low"
    )
    df["amount_category"] = np.select([df["amount"] < 100, df["amount"] < 1000], ["low", "medium"], "high")
    df["email_domain"] = df["email"].str.split("@").str[1]
    df["clean_description"] = df["description"].str.replace(CLEAN, "", regex=True)
    df["processed_at"] = pd.Timestamp.now(tz="UTC")
    df = df[df["customer_id"].notna() & df["email"].str.fullmatch(EMAIL)]
    df.to_parquet(
        out,
        partition_cols=["country", "customer_segment"],
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        index=False,
    )
    return len(df)


def run_polars(src: str, out: str, threads: int) -> int:
    import polars as pl

    df = pl.read_csv(src, infer_schema_length=0)  # all text: parse explicitly, like the engine
    pa = pl.col("purchase_amount").cast(pl.Float64, strict=False)
    df = (
        df.filter(~(pa.is_null() & pl.col("purchase_amount").is_not_null()))
        .with_columns(
            purchase_amount=pa,
            amount=pl.col("amount").cast(pl.Float64),
            customer_id=pl.col("customer_id").cast(pl.Int64),
            signup_date=pl.col("signup_date").str.to_date(),
        )
        .unique(maintain_order=True)
        .with_columns(pl.col("name").fill_null("Unknown"), pl.col("amount").fill_null(0.0))
        .filter((pl.col("amount") >= 0) & pl.col("email").str.contains("@").fill_null(False))
        .with_columns(
            customer_segment=pl.when(pl.col("purchase_amount") > 500)
            .then(pl.lit("High"))
            .when(pl.col("purchase_amount") > 100)
            .then(pl.lit("Medium"))
            .otherwise(pl.lit("Low")),
            amount_category=pl.when(pl.col("amount") < 100)
            .then(pl.lit("low"))
            .when(pl.col("amount") < 1000)
            .then(pl.lit("medium"))
            .otherwise(pl.lit("high")),
            email_domain=pl.col("email").str.split("@").list.get(1, null_on_oob=True),
            clean_description=pl.col("description").str.replace_all(CLEAN, ""),
            processed_at=pl.lit(__import__("datetime").datetime.now(__import__("datetime").UTC)),
        )
        .filter(pl.col("customer_id").is_not_null() & pl.col("email").str.contains(f"^(?:{EMAIL})$"))
    )
    df.write_parquet(
        out, partition_by=["country", "customer_segment"], compression="zstd", compression_level=ZSTD_LEVEL
    )
    return df.height


def run_duckdb(src: str, out: str, threads: int) -> int:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(
        f"""
        CREATE TEMP TABLE clean AS
        WITH raw AS (SELECT * FROM read_csv('{src}', all_varchar = true)),
        typed AS (
            SELECT TRY_CAST(customer_id AS BIGINT) AS customer_id, name, email, country,
                   TRY_CAST(purchase_amount AS DOUBLE) AS purchase_amount,
                   TRY_CAST(amount AS DOUBLE) AS amount, description,
                   TRY_CAST(signup_date AS DATE) AS signup_date,
                   purchase_amount AS raw_pa
            FROM raw),
        ok AS (SELECT DISTINCT * EXCLUDE (raw_pa) FROM typed
               WHERE NOT (purchase_amount IS NULL AND raw_pa IS NOT NULL))
        SELECT customer_id, coalesce(name, 'Unknown') AS name, email, country, purchase_amount,
               coalesce(amount, 0) AS amount, description, signup_date,
               CASE WHEN purchase_amount > 500 THEN 'High' WHEN purchase_amount > 100 THEN 'Medium'
                    ELSE 'Low' END AS customer_segment,
               CASE WHEN coalesce(amount, 0) < 100 THEN 'low' WHEN coalesce(amount, 0) < 1000
                    THEN 'medium' ELSE 'high' END AS amount_category,
               split_part(email, '@', 2) AS email_domain,
               regexp_replace(description, '{CLEAN}', '', 'g') AS clean_description,
               now() AS processed_at
        FROM ok
        WHERE coalesce(amount, 0) >= 0 AND contains(email, '@')
          AND customer_id IS NOT NULL AND regexp_full_match(email, '{EMAIL}')
        """
    )
    con.execute(
        f"COPY clean TO '{out}' (FORMAT parquet, PARTITION_BY (country, customer_segment), "
        f"COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL}, OVERWRITE_OR_IGNORE true)"
    )
    return con.execute("SELECT count(*) FROM clean").fetchone()[0]


if __name__ == "__main__":
    engine, src, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rows = {"pandas": run_pandas, "polars": run_polars, "duckdb": run_duckdb}[engine](src, out, threads)
    print(json.dumps({"rows_out": int(rows)}), flush=True)
    # The output files are closed and the count printed. Skip the interpreter's teardown:
    # Arrow's native thread pools sometimes abort there ("terminate called without an
    # active exception", apache/arrow#34314), which failed a finished pandas run.
    os._exit(0)
