"""Entry points (see pyproject.toml). Imports stay lazy: LocalStack loads plugins on demand."""

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
