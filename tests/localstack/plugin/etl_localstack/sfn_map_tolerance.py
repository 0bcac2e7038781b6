"""Distributed Map failure threshold for LocalStack 4.14's Step Functions.

Why: in AWS a Map state in DISTRIBUTED mode fails with ``States.ExceedToleratedFailureThreshold``
when its failed (or timed out) items exceed ``ToleratedFailureCount`` /
``ToleratedFailurePercentage`` (both 0 by default: any failed item fails the Map Run), and a
Catch or Retry on the Map state handles that error. LocalStack 4.14.0 only counts failed items
(``DistributedItemProcessorWorker._eval_job``); ``DistributedIterationComponent._map_run`` never
looks at the counters, so the Map Run always ends in MapRunSucceeded with ``null`` outputs for
the failed items.

What: ``apply()`` wraps ``DistributedIterationComponent._map_run`` (used by both ItemProcessor
and the legacy Iterator in distributed mode). Once every item has run, if the threshold is
exceeded it raises the ``FailureEventException`` LocalStack uses for state failures. The
existing ``_eval_body`` then records MapRunFailed (with this error and cause) and marks the Map
Run FAILED, and ``StateMap._eval_state`` applies Retry/Catch or fails the execution.

Thresholds (AWS: "If you specify both values, the workflow fails when it exceeds either value"):
LocalStack keeps 0 for a field that was not given, so a 0 is read as "not given" when the other
field is positive. Neither positive: any failed item fails the run. Only differs from AWS for a
field explicitly set to 0 next to a positive other one.

Targets localstack-core 4.14.0; a missing name (a LocalStack upgrade) logs an error at startup.
"""

from __future__ import annotations

import functools
import logging
from importlib import metadata
from typing import TYPE_CHECKING, Callable

from localstack.runtime import hooks

if TYPE_CHECKING:
    from localstack.services.stepfunctions.asl.component.state.state_execution.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
        DistributedIterationComponentEvalInput,
    )
    from localstack.services.stepfunctions.asl.component.state.state_execution.state_map.iteration.itemprocessor.map_run_record import (
        MapRunRecord,
    )
    from localstack.services.stepfunctions.asl.eval.environment import Environment

LOG = logging.getLogger(__name__)

TARGET_VERSION = "4.14.0"
CAUSE = "The specified tolerated failure threshold was exceeded"

_MapRun = Callable[
    ["DistributedIterationComponent", "Environment", "DistributedIterationComponentEvalInput"],
    None,
]


def threshold_exceeded(
    failed: int, total: int, tolerated_count: int, tolerated_percentage: float
) -> bool:
    """Whether `failed` (failed + timed out) of `total` items exceed the tolerated threshold."""
    if failed <= 0:
        return False
    over_count = failed > tolerated_count
    over_percentage = total > 0 and failed * 100.0 / total > tolerated_percentage
    if tolerated_count > 0 and tolerated_percentage > 0:
        return over_count or over_percentage
    if tolerated_count > 0:
        return over_count
    if tolerated_percentage > 0:
        return over_percentage
    return True


def _record_exceeded(record: MapRunRecord) -> bool:
    items = record.item_counter
    return threshold_exceeded(
        failed=items.failed.get() + items.timed_out.get(),
        total=items.total.get(),
        tolerated_count=int(record.tolerated_failure_count or 0),
        tolerated_percentage=float(record.tolerated_failure_percentage or 0.0),
    )


def apply() -> bool:
    """Install the patch (idempotent). Returns False, after logging an error, if LocalStack's
    internals are not the ones this was written for."""
    try:
        from localstack.aws.api.stepfunctions import HistoryEventType, MapRunFailedEventDetails
        from localstack.services.stepfunctions.asl.component.common.error_name.failure_event import (
            FailureEvent,
            FailureEventException,
        )
        from localstack.services.stepfunctions.asl.component.common.error_name.states_error_name import (
            StatesErrorName,
        )
        from localstack.services.stepfunctions.asl.component.common.error_name.states_error_name_type import (
            StatesErrorNameType,
        )
        from localstack.services.stepfunctions.asl.component.state.state_execution.state_map.iteration.distributed_iteration_component import (
            DistributedIterationComponent,
        )
        from localstack.services.stepfunctions.asl.eval.event.event_detail import EventDetails

        error_type = StatesErrorNameType.StatesExceedToleratedFailureThreshold
        original: _MapRun = DistributedIterationComponent._map_run  # type: ignore[assignment]
        event_type = HistoryEventType.MapRunFailed
    except (ImportError, AttributeError) as e:
        LOG.error(
            "etl_localstack: cannot patch the Distributed Map failure threshold (written for "
            "localstack-core %s): %s. Distributed Maps will succeed whatever their items do.",
            TARGET_VERSION,
            e,
        )
        return False

    if getattr(original, "_etl_tolerance_patch", False):
        return True

    version = metadata.version("localstack-core")
    if version != TARGET_VERSION:
        LOG.warning(
            "etl_localstack: Distributed Map failure threshold patch targets localstack-core %s, "
            "found %s; check whether LocalStack now enforces ToleratedFailure* itself",
            TARGET_VERSION,
            version,
        )

    @functools.wraps(original)
    def _map_run(
        self: DistributedIterationComponent,
        env: Environment,
        eval_input: DistributedIterationComponentEvalInput,
    ) -> None:
        original(self, env, eval_input)
        if not _record_exceeded(eval_input.map_run_record):
            return
        env.stack.pop()  # the item outputs _map_run pushed: this Map has no result
        error_name = StatesErrorName(typ=error_type)
        raise FailureEventException(
            failure_event=FailureEvent(
                env=env,
                error_name=error_name,
                event_type=event_type,
                event_details=EventDetails(
                    mapRunFailedEventDetails=MapRunFailedEventDetails(
                        error=error_name.error_name, cause=CAUSE
                    )
                ),
            )
        )

    setattr(_map_run, "_etl_tolerance_patch", True)
    DistributedIterationComponent._map_run = _map_run  # type: ignore[method-assign]
    LOG.info("etl_localstack: Distributed Map failure threshold enforced (patched _map_run)")
    return True


@hooks.on_infra_start()
def patch_distributed_map_tolerance() -> None:
    """Entry point (pyproject.toml): runs once as LocalStack starts, before it serves requests.
    Lives here, not in plugins.py, so startup does not import the other plugins' modules."""
    apply()
