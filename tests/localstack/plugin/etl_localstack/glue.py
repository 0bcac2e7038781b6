"""Glue for community LocalStack: every operation of the Glue API goes to moto.

LocalStack ships moto (moto-ext) and can call it in-process; community LocalStack just has no
provider that routes Glue there. Registered as ``glue:default``, this one makes Glue part of
the gateway, so Step Functions' glue:startJobRun(.sync) and glue:startCrawler integrations
and any SDK talk to it at the same endpoint as every other service.

moto's Glue keeps state in memory and moves a job run on (STARTING -> RUNNING -> SUCCEEDED)
each time it is read, which is what a .sync integration polls for. A crawl moves on only when
moto's ListCrawls reads it; here GetCrawler(s) do that too, so a workflow polling the crawler's
State sees RUNNING and then READY, as in AWS.
"""

from localstack.aws.skeleton import Skeleton
from localstack.aws.spec import load_service
from localstack.services.moto import call_moto
from localstack.services.plugins import Service, ServiceLifecycleHook


def _to_moto(context, request):
    return call_moto(context)


def _advance_crawls(context, names=None) -> None:
    from moto.glue.models import glue_backends

    backend = glue_backends[context.account_id][context.region]
    for name, crawler in list(backend.crawlers.items()):
        if (names is None or name in names) and crawler.crawls:
            last = crawler.crawls[-1]
            if last.status in ("RUNNING", "STOPPING"):
                last.advance()


def _get_crawler(context, request):
    _advance_crawls(context, {request.get("Name")})
    return call_moto(context)


def _get_crawlers(context, request):
    _advance_crawls(context)
    return call_moto(context)


def create_glue_service() -> Service:
    spec = load_service("glue")
    dispatch = {operation: _to_moto for operation in spec.operation_names}
    dispatch["GetCrawler"] = _get_crawler
    dispatch["GetCrawlers"] = _get_crawlers
    return Service(
        name="glue",
        skeleton=Skeleton(spec, dispatch),
        lifecycle_hook=ServiceLifecycleHook(),
    )
