"""Glue Data Catalog sync, as s3-processor does it (shared/etl-aws/src/glue.rs): the same
table `<database>.<dataset>` for both engines, created when missing (Parquet), new data
columns appended (UpdateTable with the VersionId read, retried on a concurrent change), a
changed column type or partition key list refused, new partitions added with
BatchCreatePartition (ones that exist are fine). Partition keys are strings: values live
in paths as text.
"""

from __future__ import annotations

import time

PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARTITION_BATCH = 100
UPDATE_ATTEMPTS = 5
_ESCAPED = set('"#%\'*/:=?\\{[]^')


class CatalogError(Exception):
    """The data does not fit the table (s3-processor's InvalidInput)."""


def _norm(t: str) -> str:
    return "".join(t.split()).lower()


def escape_partition_value(s: str) -> str:
    out = []
    for c in s:
        # Rust's char::is_control: the C0 and C1 controls and DEL.
        if c in _ESCAPED or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F:
            out.extend(f"%{b:02X}" for b in c.encode())
        else:
            out.append(c)
    return "".join(out)


def partition_location(location: str, keys: list[str], values: list[str]) -> str:
    loc = location.rstrip("/")
    for k, v in zip(keys, values):
        loc += f"/{escape_partition_value(k)}={escape_partition_value(v)}"
    return loc + "/"


def plan_schema(table: str, existing: list[dict], existing_keys: list[dict],
                columns: list[dict], keys: list[dict]) -> tuple[list[dict], list[str]]:
    """The columns to store (existing in place, new appended) and the names added."""
    same_keys = len(existing_keys) == len(keys) and all(
        a["Name"].lower() == b["Name"].lower() and _norm(a.get("Type", "")) == _norm(b["Type"])
        for a, b in zip(existing_keys, keys))
    if not same_keys:
        show = lambda ks: ", ".join(f"{k['Name']} {k.get('Type', '')}" for k in ks)  # noqa: E731
        raise CatalogError(
            f"table {table}: partition keys are [{show(existing_keys)}] in the catalog but "
            f"[{show(keys)}] in the data; partition keys cannot change, write to a new table")
    out = [{"Name": c["Name"], "Type": c.get("Type", "")} for c in existing]
    added = []
    for want in columns:
        have = next((c for c in out if c["Name"].lower() == want["Name"].lower()), None)
        if have is None:
            out.append(dict(want))
            added.append(want["Name"])
        elif _norm(have["Type"]) != _norm(want["Type"]):
            raise CatalogError(
                f"table {table}: column {have['Name']} is {have['Type']} in the catalog but "
                f"{want['Type']} in the data; Athena could not read the existing files with "
                "the new type. Cast it back in the pipeline spec, or write the new type under "
                "a new column name")
    return out, added


def _storage(columns: list[dict], location: str) -> dict:
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE,
                      "Parameters": {"serialization.format": "1"}},
    }


def _table_input(name: str, columns: list[dict], keys: list[dict], location: str,
                 parameters: dict | None) -> dict:
    params = dict(parameters or {})
    params.update({"classification": "parquet", "EXTERNAL": "TRUE"})
    return {"Name": name, "TableType": "EXTERNAL_TABLE", "Parameters": params,
            "StorageDescriptor": _storage(columns, location), "PartitionKeys": keys}


def _code(e) -> str:
    return getattr(e, "response", {}).get("Error", {}).get("Code", "")


def ensure_database(glue, database: str) -> None:
    try:
        glue.get_database(Name=database)
        return
    except glue.exceptions.EntityNotFoundException:
        pass
    try:
        glue.create_database(DatabaseInput={"Name": database})
    except glue.exceptions.AlreadyExistsException:
        pass


def sync(glue, database: str, table: str, location: str, manifest: dict) -> dict:
    """Table and partitions for a published manifest; returns what was done."""
    columns = [{"Name": c["name"], "Type": c["glue_type"]}
               for c in manifest["schema"] if not c["partition"]]
    keys = [{"Name": c["name"], "Type": "string"} for c in manifest["schema"] if c["partition"]]
    qualified = f"{database}.{table}"
    dup = next((c for c in columns if any(k["Name"].lower() == c["Name"].lower() for k in keys)), None)
    if dup:
        raise CatalogError(f"table {qualified}: {dup['Name']} is both a data column and a partition key")
    ensure_database(glue, database)
    action, added = None, []
    for attempt in range(UPDATE_ATTEMPTS):
        if attempt:
            time.sleep(0.05 * (1 << attempt))
        try:
            current = glue.get_table(DatabaseName=database, Name=table)["Table"]
        except glue.exceptions.EntityNotFoundException:
            try:
                glue.create_table(DatabaseName=database,
                                  TableInput=_table_input(table, columns, keys, location, None))
                action, added = "created", [c["Name"] for c in columns]
                break
            except glue.exceptions.AlreadyExistsException:
                continue
        sd = current.get("StorageDescriptor") or {}
        stored, added = plan_schema(qualified, sd.get("Columns") or [],
                                    current.get("PartitionKeys") or [], columns, keys)
        same_location = (sd.get("Location") or "").rstrip("/") == location.rstrip("/")
        if not added and same_location:
            action = "unchanged"
            break
        args = {"DatabaseName": database,
                "TableInput": _table_input(table, stored, keys, location, current.get("Parameters"))}
        if current.get("VersionId"):
            args["VersionId"] = current["VersionId"]
        try:
            glue.update_table(**args)
            action = "updated"
            break
        except glue.exceptions.ConcurrentModificationException:
            continue
    else:
        raise RuntimeError(f"updating Glue table {qualified}: still conflicting after "
                           f"{UPDATE_ATTEMPTS} attempts")
    names = [k["Name"] for k in keys]
    partitions = sorted({tuple(o["partition"].get(k, "") for k in names) for o in manifest["outputs"]})
    partitions = [list(p) for p in partitions if p]
    created = existed = 0
    for i in range(0, len(partitions), PARTITION_BATCH):
        chunk = partitions[i:i + PARTITION_BATCH]
        out = glue.batch_create_partition(
            DatabaseName=database, TableName=table,
            PartitionInputList=[{"Values": v, "StorageDescriptor": _storage(
                columns, partition_location(location, names, v))} for v in chunk])
        failures, here = [], 0
        for err in out.get("Errors") or []:
            if (err.get("ErrorDetail") or {}).get("ErrorCode") == "AlreadyExistsException":
                here += 1
            else:
                failures.append(err)
        if failures:
            f = failures[0]
            d = f.get("ErrorDetail") or {}
            raise CatalogError(
                f"adding partitions to {qualified}: {len(failures)} failed, first "
                f"{f.get('PartitionValues')}: {d.get('ErrorCode', 'unknown error')}: "
                f"{d.get('ErrorMessage', '')}")
        created += len(chunk) - here
        existed += here
    return {"action": action, "added_columns": added, "partitions_created": created,
            "partitions_existing": existed}
