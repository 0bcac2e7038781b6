"""The generic Spark runner of pipeline specs: `etl plan --target spark` compiles a spec,
this package runs the plan. `reader` is the input layer, `transform` the Spark part,
`kernels` the value semantics Spark lacks, `local` the local file layout (`make spark-run`).
"""
