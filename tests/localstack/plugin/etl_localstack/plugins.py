"""Entry points (see pyproject.toml). Imports stay lazy: LocalStack loads plugins on demand."""

from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    ResourceProvider,
)
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.plugins import Service, aws_provider


class HostRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """Selected with LAMBDA_RUNTIME_EXECUTOR=host."""

    name = "host"

    def load(self, *args, **kwargs):
        from .host_executor import HostRuntimeExecutor

        return HostRuntimeExecutor


@aws_provider(api="glue")
def glue() -> Service:
    from .glue import create_glue_service

    return create_glue_service()


class _GlueResourceProviderPlugin(CloudFormationResourceProviderPlugin):
    """CloudFormation looks providers up by the plugin's name, the resource type; `factory` is
    what it instantiates."""

    provider: str  # class name in glue_cfn

    def __init__(self) -> None:
        self.factory: type[ResourceProvider] | None = None

    def load(self) -> None:
        from . import glue_cfn

        self.factory = getattr(glue_cfn, self.provider)


class GlueDatabaseProviderPlugin(_GlueResourceProviderPlugin):
    name = "AWS::Glue::Database"
    provider = "GlueDatabaseProvider"


class GlueCrawlerProviderPlugin(_GlueResourceProviderPlugin):
    name = "AWS::Glue::Crawler"
    provider = "GlueCrawlerProvider"


class GlueJobProviderPlugin(_GlueResourceProviderPlugin):
    name = "AWS::Glue::Job"
    provider = "GlueJobProvider"
