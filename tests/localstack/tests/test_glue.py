"""Glue through LocalStack's gateway (our glue:default provider, backed by moto)."""

import json

from helpers import ACCOUNT, run_state_machine, unique, wait_for

GLUE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/probe-glue"
TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR"}


def columns(*pairs):
    return [{"Name": name, "Type": type_} for name, type_ in pairs]


def test_catalog_database_table_partitions_round_trip(client):
    glue = client("glue")
    db = unique("probe_db").replace("-", "_")
    glue.create_database(DatabaseInput={"Name": db, "Description": "probe"})
    try:
        location = f"s3://processed/{db}/customers/"
        glue.create_table(
            DatabaseName=db,
            TableInput={
                "Name": "customers",
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"classification": "parquet"},
                "PartitionKeys": columns(("country", "string"), ("customer_segment", "string")),
                "StorageDescriptor": {
                    "Columns": columns(("customer_id", "bigint"), ("email", "string")),
                    "Location": location,
                    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    "SerdeInfo": {
                        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    },
                },
            },
        )
        table = glue.get_table(DatabaseName=db, Name="customers")["Table"]
        assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["customer_id", "email"]
        assert [k["Name"] for k in table["PartitionKeys"]] == ["country", "customer_segment"]

        values = [["US", "High"], ["DE", "Low"]]
        result = glue.batch_create_partition(
            DatabaseName=db,
            TableName="customers",
            PartitionInputList=[
                {
                    "Values": v,
                    "StorageDescriptor": {
                        "Columns": table["StorageDescriptor"]["Columns"],
                        "Location": f"{location}country={v[0]}/customer_segment={v[1]}/",
                    },
                }
                for v in values
            ],
        )
        assert result.get("Errors", []) == []
        partitions = glue.get_partitions(DatabaseName=db, TableName="customers")["Partitions"]
        assert sorted(p["Values"] for p in partitions) == sorted(values)
        one = glue.get_partition(
            DatabaseName=db, TableName="customers", PartitionValues=["US", "High"]
        )["Partition"]
        assert one["StorageDescriptor"]["Location"].endswith("country=US/customer_segment=High/")

        # Schema evolution as s3-processor does it: append a column with UpdateTable.
        evolved = columns(("customer_id", "bigint"), ("email", "string"), ("amount", "double"))
        glue.update_table(
            DatabaseName=db,
            TableInput={
                "Name": "customers",
                "PartitionKeys": table["PartitionKeys"],
                "StorageDescriptor": {**table["StorageDescriptor"], "Columns": evolved},
            },
        )
        table = glue.get_table(DatabaseName=db, Name="customers")["Table"]
        assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][-1] == "amount"
    finally:
        glue.delete_database(Name=db)


def create_job(glue) -> str:
    name = unique("probe-job")
    glue.create_job(
        Name=name,
        Role=GLUE_ROLE,
        Command={"Name": "glueetl", "ScriptLocation": "s3://scripts/etl.py"},
        GlueVersion="4.0",
    )
    return name


def test_job_run_is_started_and_read_back(client):
    glue = client("glue")
    job = create_job(glue)
    try:
        run_id = glue.start_job_run(JobName=job, Arguments={"--dataset": "customers"})["JobRunId"]
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        assert run["Id"] == run_id and run["JobName"] == job
        final = wait_for(
            "the job run to finish",
            lambda: (
                r := glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
            )["JobRunState"] in TERMINAL_JOB_STATES
            and r,
        )
        assert final["JobRunState"] == "SUCCEEDED"
        assert run_id in [r["Id"] for r in glue.get_job_runs(JobName=job)["JobRuns"]]
    finally:
        glue.delete_job(JobName=job)


def test_state_machine_glue_start_job_run_sync(client):
    glue = client("glue")
    job = create_job(glue)
    definition = {
        "StartAt": "RunJob",
        "States": {
            "RunJob": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {"JobName": job, "Arguments": {"--dataset.$": "$.dataset"}},
                "End": True,
            }
        },
    }
    try:
        execution = run_state_machine(client, definition, {"dataset": "customers"}, timeout=120)
    finally:
        glue.delete_job(JobName=job)

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["JobName"] == job
    assert output["JobRunState"] == "SUCCEEDED"


def test_crawler_is_created_and_started_directly_and_from_step_functions(client):
    glue = client("glue")
    db = unique("probe_db").replace("-", "_")
    crawler = unique("probe-crawler")
    glue.create_database(DatabaseInput={"Name": db})
    glue.create_crawler(
        Name=crawler,
        Role=GLUE_ROLE,
        DatabaseName=db,
        Targets={"S3Targets": [{"Path": f"s3://processed/{db}/"}]},
    )
    try:
        assert glue.get_crawler(Name=crawler)["Crawler"]["State"] == "READY"
        glue.start_crawler(Name=crawler)
        wait_for(
            "the crawler to run and return to READY",
            lambda: glue.get_crawler(Name=crawler)["Crawler"]["State"] == "READY",
        )
        # The workflow's UpdateDataCatalog step: the AWS SDK integration for StartCrawler.
        definition = {
            "StartAt": "Crawl",
            "States": {
                "Crawl": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:glue:startCrawler",
                    "Parameters": {"Name": crawler},
                    "End": True,
                }
            },
        }
        execution = run_state_machine(client, definition, {})
        assert execution["status"] == "SUCCEEDED", execution
        crawls = wait_for(
            "two crawls recorded",
            lambda: len(c := glue.list_crawls(CrawlerName=crawler)["Crawls"]) == 2 and c,
        )
        assert len(crawls) == 2
    finally:
        glue.delete_crawler(Name=crawler)
        glue.delete_database(Name=db)
