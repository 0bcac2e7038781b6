"""CloudFormation resource providers for AWS::Glue::Database, ::Crawler and ::Job.

Community LocalStack has none, so a template with Glue resources cannot deploy. These call the
Glue API through LocalStack's gateway (our glue:default provider, i.e. moto), so what a stack
makes is what the Glue API then reads back.

The CloudFormation engine (v2 in 4.14) needs from a provider: create/update/delete returning the
resource model, and a SCHEMA dict whose primaryIdentifier names the model property that becomes
the physical resource id, which is what Ref returns (the name for all three, as in AWS);
createOnlyProperties changed in a template make the engine replace the resource (create the
new, then delete the old) instead of calling update. Fn::GetAtt reads the model's properties.
"""

from __future__ import annotations

import copy
from typing import Any

import localstack.services.cloudformation.provider_utils as util
from localstack.services.cloudformation.resource_provider import (
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

# The CloudFormation properties of these types are the Glue API's parameters, so a model is
# passed to the API call as is: the client LocalStack hands providers drops keys the call does
# not take and coerces strings to integers (ConvertingInternalClientFactory).
Model = dict[str, Any]


def _schema(type_name: str, name_path: str, *create_only: str) -> dict[str, Any]:
    # Only what the engine reads; the models are the Glue API's, so no property schemas.
    return {
        "typeName": type_name,
        "primaryIdentifier": [name_path],
        "createOnlyProperties": [name_path, *create_only],
    }


class _GlueResource(ResourceProvider[Model]):
    """Create and delete by name; update deletes and creates again, as moto has no
    UpdateCrawler or UpdateJob (a changed Name never gets here: the engine replaces)."""

    TYPE: str

    def name_of(self, model: Model) -> str | None:
        return model.get("Name")

    def set_name(self, model: Model, name: str) -> None:
        model["Name"] = name

    def default_name(self, request: ResourceRequest[Model]) -> str:
        return util.generate_default_name(request.stack_name, request.logical_resource_id)

    def create_in_glue(self, glue: Any, model: Model) -> None:
        raise NotImplementedError

    def delete_in_glue(self, glue: Any, name: str) -> None:
        raise NotImplementedError

    def create(self, request: ResourceRequest[Model]) -> ProgressEvent[Model]:
        model = copy.deepcopy(request.desired_state)
        # No name in the template: keep the one generated at creation across updates.
        previous = request.previous_state and self.name_of(request.previous_state)
        self.set_name(model, self.name_of(model) or previous or self.default_name(request))
        self.create_in_glue(request.aws_client_factory.glue, model)
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(self, request: ResourceRequest[Model]) -> ProgressEvent[Model]:
        glue = request.aws_client_factory.glue
        if name := self.name_of(request.desired_state):  # none if its creation failed
            try:
                self.delete_in_glue(glue, name)
            except glue.exceptions.EntityNotFoundException:
                pass  # already gone: deleting is done
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model={})

    def update(self, request: ResourceRequest[Model]) -> ProgressEvent[Model]:
        self.delete_in_glue(request.aws_client_factory.glue, self.name_of(request.previous_state))
        return self.create(request)


class GlueDatabaseProvider(_GlueResource):
    """Properties: CatalogId, DatabaseInput {Name, Description, LocationUri, Parameters, ...}.
    The model also gets DatabaseName (as in AWS's schema), the name Ref returns."""

    TYPE = "AWS::Glue::Database"
    SCHEMA = _schema(TYPE, "/properties/DatabaseName", "/properties/CatalogId")

    def name_of(self, model: Model) -> str | None:
        return (model.get("DatabaseInput") or {}).get("Name") or model.get("DatabaseName")

    def set_name(self, model: Model, name: str) -> None:
        model.setdefault("DatabaseInput", {})["Name"] = model["DatabaseName"] = name

    def default_name(self, request: ResourceRequest[Model]) -> str:
        return super().default_name(request).lower()  # Glue folds database names to lowercase

    def create_in_glue(self, glue: Any, model: Model) -> None:
        glue.create_database(**model)

    def delete_in_glue(self, glue: Any, name: str) -> None:
        glue.delete_database(Name=name)

    def update(self, request: ResourceRequest[Model]) -> ProgressEvent[Model]:
        old = self.name_of(request.previous_state)
        if (self.name_of(request.desired_state) or old) != old:
            # A new DatabaseInput.Name: Glue cannot rename, so make the new one, drop the old.
            event = self.create(request)
            self.delete_in_glue(request.aws_client_factory.glue, old)
            return event
        # In place, not delete + create, which would drop the tables crawlers made in it.
        glue = request.aws_client_factory.glue
        model = copy.deepcopy(request.desired_state)
        self.set_name(model, old)
        glue.update_database(**model, Name=old)
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


class GlueCrawlerProvider(_GlueResource):
    """Properties: Name, Role, DatabaseName, Targets {S3Targets [{Path, Exclusions}], ...},
    SchemaChangePolicy, TablePrefix, Configuration, Schedule {ScheduleExpression},
    Description, Tags (a map), and the other CreateCrawler parameters."""

    TYPE = "AWS::Glue::Crawler"
    SCHEMA = _schema(TYPE, "/properties/Name")

    def create_in_glue(self, glue: Any, model: Model) -> None:
        args = dict(model)
        if isinstance(schedule := args.pop("Schedule", None), dict):
            # CloudFormation nests the cron expression; the API takes the string.
            schedule = schedule.get("ScheduleExpression")
        if schedule:
            args["Schedule"] = schedule
        glue.create_crawler(**args)

    def delete_in_glue(self, glue: Any, name: str) -> None:
        glue.delete_crawler(Name=name)


class GlueJobProvider(_GlueResource):
    """Properties: Name, Role, Command {Name, ScriptLocation, PythonVersion}, DefaultArguments,
    GlueVersion, WorkerType, NumberOfWorkers, MaxCapacity, Timeout, MaxRetries,
    ExecutionProperty {MaxConcurrentRuns}, Description, Tags (a map), and the other CreateJob
    parameters."""

    TYPE = "AWS::Glue::Job"
    SCHEMA = _schema(TYPE, "/properties/Name")

    def create_in_glue(self, glue: Any, model: Model) -> None:
        glue.create_job(**model)

    def delete_in_glue(self, glue: Any, name: str) -> None:
        glue.delete_job(JobName=name)
