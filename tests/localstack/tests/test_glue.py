"""Glue through LocalStack's gateway (our glue:default provider, backed by moto)."""

import json

import pytest

from helpers import ACCOUNT, REGION, run_state_machine, unique, wait_for

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


# --- CloudFormation: our AWS::Glue::Database / ::Crawler / ::Job resource providers ----------


def stack_outputs(cfn, stack_id: str, want: str) -> dict[str, str]:
    """Wait until the stack leaves *_IN_PROGRESS; assert it reached `want`; return its outputs."""
    stack = wait_for(
        f"stack to reach {want}",
        lambda: not (s := cfn.describe_stacks(StackName=stack_id)["Stacks"][0])[
            "StackStatus"
        ].endswith("_IN_PROGRESS")
        and s,
        timeout=60,
    )
    failed = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
        if e["ResourceStatus"].endswith("_FAILED")
    ]
    assert stack["StackStatus"] == want, (stack.get("StackStatusReason"), failed)
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def delete_stack(cfn, stack_id: str) -> None:
    cfn.delete_stack(StackName=stack_id)
    stack_outputs(cfn, stack_id, "DELETE_COMPLETE")


def glue_template(database: dict, crawler: dict, job: dict) -> str:
    """The three resources (the crawler and job use the database through Ref) and Ref outputs."""
    return json.dumps(
        {
            "Resources": {
                "Database": {"Type": "AWS::Glue::Database", "Properties": database},
                "Crawler": {"Type": "AWS::Glue::Crawler", "Properties": crawler},
                "Job": {"Type": "AWS::Glue::Job", "Properties": job},
            },
            "Outputs": {name: {"Value": {"Ref": name}} for name in ("Database", "Crawler", "Job")},
        }
    )


def test_cloudformation_stack_creates_and_deletes_glue_database_crawler_and_job(client):
    cfn, glue = client("cloudformation"), client("glue")
    db = unique("probe_db").replace("-", "_")
    crawler, job = unique("probe-crawler"), unique("probe-job")
    location = f"s3://processed/{db}/"
    configuration = json.dumps(
        {"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}}
    )
    targets = {"S3Targets": [{"Path": f"{location}customers/", "Exclusions": ["**/_tmp/**"]}]}
    policy = {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
    command = {"Name": "glueetl", "ScriptLocation": "s3://scripts/etl.py", "PythonVersion": "3"}
    template = glue_template(
        database={
            "CatalogId": {"Ref": "AWS::AccountId"},
            "DatabaseInput": {
                "Name": db,
                "Description": "probe",
                "LocationUri": location,
                "Parameters": {"classification": "parquet"},
            },
        },
        crawler={
            "Name": crawler,
            "Role": GLUE_ROLE,
            "DatabaseName": {"Ref": "Database"},
            "Targets": targets,
            "SchemaChangePolicy": policy,
            "TablePrefix": "raw_",
            "Configuration": configuration,
            "Schedule": {"ScheduleExpression": "cron(0 2 * * ? *)"},
            "Description": "probe crawler",
            "Tags": {"team": "etl"},
        },
        job={
            "Name": job,
            "Role": GLUE_ROLE,
            "Command": command,
            "DefaultArguments": {"--database": {"Ref": "Database"}, "--dataset": "customers"},
            "GlueVersion": "4.0",
            "WorkerType": "G.1X",
            "NumberOfWorkers": 2,
            "Timeout": 30,
            "MaxRetries": 1,
            "ExecutionProperty": {"MaxConcurrentRuns": 3},
            "Description": "probe job",
            "Tags": {"team": "etl"},
        },
    )
    stack_id = cfn.create_stack(StackName=unique("probe-glue"), TemplateBody=template)["StackId"]
    try:
        outputs = stack_outputs(cfn, stack_id, "CREATE_COMPLETE")
        assert outputs == {"Database": db, "Crawler": crawler, "Job": job}  # Ref is the name

        database = glue.get_database(Name=db)["Database"]
        assert (database["Description"], database["LocationUri"]) == ("probe", location)
        assert database["Parameters"] == {"classification": "parquet"}
        assert database["CatalogId"] == ACCOUNT

        got = glue.get_crawler(Name=crawler)["Crawler"]
        assert (got["Role"], got["DatabaseName"], got["TablePrefix"]) == (GLUE_ROLE, db, "raw_")
        assert (got["Targets"], got["SchemaChangePolicy"]) == (targets, policy)
        assert got["Schedule"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
        assert (got["Configuration"], got["Description"]) == (configuration, "probe crawler")
        arn = f"arn:aws:glue:{REGION}:{ACCOUNT}"
        assert glue.get_tags(ResourceArn=f"{arn}:crawler/{crawler}")["Tags"] == {"team": "etl"}

        got = glue.get_job(JobName=job)["Job"]
        assert (got["Role"], got["Command"], got["GlueVersion"]) == (GLUE_ROLE, command, "4.0")
        assert got["DefaultArguments"] == {"--database": db, "--dataset": "customers"}
        assert (got["WorkerType"], got["NumberOfWorkers"]) == ("G.1X", 2)
        assert (got["Timeout"], got["MaxRetries"]) == (30, 1)
        assert got["ExecutionProperty"] == {"MaxConcurrentRuns": 3}
        assert got["Description"] == "probe job"
        assert glue.get_tags(ResourceArn=f"{arn}:job/{job}")["Tags"] == {"team": "etl"}
    finally:
        delete_stack(cfn, stack_id)

    for get in (
        lambda: glue.get_database(Name=db),
        lambda: glue.get_crawler(Name=crawler),
        lambda: glue.get_job(JobName=job),
    ):
        with pytest.raises(glue.exceptions.EntityNotFoundException):
            get()


def test_cloudformation_stack_update_changes_glue_resources_and_keeps_generated_names(client):
    cfn, glue = client("cloudformation"), client("glue")
    stack = unique("probe-glue")

    def template(version: str, workers: int) -> str:
        # No names: CloudFormation generates them, as in AWS.
        return glue_template(
            database={
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseInput": {"Description": version},
            },
            crawler={
                "Role": GLUE_ROLE,
                "DatabaseName": {"Ref": "Database"},
                "Targets": {"S3Targets": [{"Path": "s3://processed/customers/"}]},
                "Description": version,
            },
            job={
                "Role": GLUE_ROLE,
                "Command": {"Name": "pythonshell", "ScriptLocation": "s3://scripts/etl.py"},
                "MaxCapacity": 0.0625,
                "NumberOfWorkers": workers,
                "Description": version,
            },
        )

    stack_id = cfn.create_stack(StackName=stack, TemplateBody=template("v1", 2))["StackId"]
    try:
        names = stack_outputs(cfn, stack_id, "CREATE_COMPLETE")
        assert all(name.startswith(f"{stack}-") for name in names.values()), names
        assert names["Database"] == names["Database"].lower()
        assert glue.get_job(JobName=names["Job"])["Job"]["MaxCapacity"] == 0.0625

        cfn.update_stack(StackName=stack_id, TemplateBody=template("v2", 5))
        assert stack_outputs(cfn, stack_id, "UPDATE_COMPLETE") == names
        assert glue.get_database(Name=names["Database"])["Database"]["Description"] == "v2"
        crawler = glue.get_crawler(Name=names["Crawler"])["Crawler"]
        assert (crawler["Description"], crawler["DatabaseName"]) == ("v2", names["Database"])
        job = glue.get_job(JobName=names["Job"])["Job"]
        assert (job["Description"], job["NumberOfWorkers"]) == ("v2", 5)
    finally:
        delete_stack(cfn, stack_id)
    assert names["Job"] not in glue.list_jobs()["JobNames"]
