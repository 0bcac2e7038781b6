"""LocalStack plugins for running this project's Rust Lambdas and Glue with no Docker.

- ``localstack.lambda.runtime_executor`` / ``host``: runs provided.al2023 / provided.al2
  functions' ``bootstrap`` as host processes (see host_executor.py);
- ``localstack.aws.provider`` / ``glue:default``: the Glue API served by the moto that
  LocalStack bundles, with job runs that run the job's script as a host process (see glue.py);
- ``localstack.cloudformation.resource_providers`` / ``aws::glue::database``, ``::crawler``,
  ``::job``: those CloudFormation resource types, made through that Glue API (see glue_cfn.py);
- ``localstack.hooks.on_infra_start`` / ``patch_distributed_map_tolerance``: Distributed Map
  states fail with States.ExceedToleratedFailureThreshold as in AWS (see sfn_map_tolerance.py).
"""
