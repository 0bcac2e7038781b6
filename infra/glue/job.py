"""The Glue job's entry script: every dataset spec, on exactly the files it is given.

The code is the `etl_spark` package, shipped with the plans of every spec in
infra/pipelines/ as the job's --extra-py-files zip (`make glue-package`); see
etl_spark/job.py for the arguments and README ("The Glue job").
"""

import os
import sys

# Glue runs this script from a directory of its own. Run from the repository, the source
# package beside it (which has no plans) would shadow the packaged one on PYTHONPATH.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

from etl_spark.job import main  # noqa: E402

if __name__ == "__main__":
    main()
