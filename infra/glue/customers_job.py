"""Glue (Spark) twin of infra/pipelines/customers.yaml, for the workflow's "glue" engine.

Reads every CSV under --source_path, applies the customers spec's steps and writes Parquet
partitioned by country and customer_segment under --target_path; rows failing the spec's
filters go to <target_path>_quarantine/ with a _reject_reason column, so no row is lost.
The Lambda engine (s3-processor) is the reference implementation; this job exists for
inputs too large for one Lambda and keeps the same rules.

Job arguments: --JOB_NAME (set by Glue), --source_path, --target_path.
"""

import sys

from awsglue.context import GlueContext
from awsglue.job import Job
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext
from pyspark.sql import DataFrame, functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

SCHEMA = StructType(
    [
        StructField("customer_id", LongType()),
        StructField("name", StringType()),
        StructField("email", StringType()),
        StructField("country", StringType()),
        StructField("purchase_amount", DoubleType()),
        StructField("amount", DoubleType()),
        StructField("description", StringType()),
        StructField("signup_date", DateType()),
    ]
)
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def transform(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(clean rows, rejected rows with _reject_reason), in the spec's step order."""
    rows = raw.dropDuplicates().fillna({"name": "Unknown", "amount": 0.0})
    reason = (
        F.when(F.col("amount") < 0, F.lit("non_negative_amount"))
        .when(~F.col("email").contains("@") | F.col("email").isNull(), F.lit("email_has_at"))
        .when(F.col("customer_id").isNull(), F.lit("IsComplete(customer_id)"))
        .when(~F.col("email").rlike(EMAIL), F.lit("ColumnValues(email)"))
    )
    tagged = rows.withColumn("_reject_reason", reason)
    rejected = tagged.filter(F.col("_reject_reason").isNotNull())
    clean = (
        tagged.filter(F.col("_reject_reason").isNull())
        .drop("_reject_reason")
        .withColumn(
            "customer_segment",
            F.when(F.col("purchase_amount") > 500, "High")
            .when(F.col("purchase_amount") > 100, "Medium")
            .otherwise("Low"),
        )
        .withColumn(
            "amount_category",
            F.when(F.col("amount") < 100, "low")
            .when(F.col("amount") < 1000, "medium")
            .otherwise("high"),
        )
        .withColumn("email_domain", F.split("email", "@").getItem(1))
        .withColumn("clean_description", F.regexp_replace("description", "[^A-Za-z0-9 ]", ""))
        .withColumn("processed_at", F.current_timestamp())
    )
    return clean, rejected


def main() -> None:
    args = getResolvedOptions(sys.argv, ["JOB_NAME", "source_path", "target_path"])
    glue = GlueContext(SparkContext.getOrCreate())
    job = Job(glue)
    job.init(args["JOB_NAME"], args)

    raw = (
        glue.spark_session.read.option("header", "true")
        .option("mode", "PERMISSIVE")
        .schema(SCHEMA)
        .csv(args["source_path"])
    )
    clean, rejected = transform(raw)
    target = args["target_path"].rstrip("/")
    clean.write.mode("overwrite").partitionBy("country", "customer_segment").parquet(target)
    rejected.write.mode("overwrite").parquet(f"{target}_quarantine")
    job.commit()


if __name__ == "__main__":
    main()
