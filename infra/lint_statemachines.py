"""cfn-lint for state machine definitions kept in their own files.

cfn-lint checks a Step Functions definition (states, fields, Retry/Catch shapes) only when
it is inline in a template; ours are files referenced by DefinitionUri. Each is wrapped in a
throwaway template as an inline Definition and linted. The ${...} placeholders that
DefinitionSubstitutions fill in stay as strings, which is where the definitions use them.

    python lint_statemachines.py ../statemachines/*.asl.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def wrap(definition: dict) -> dict:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/lint",
                    "Definition": definition,
                },
            }
        },
    }


def main(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        definition = json.loads(Path(path).read_text())
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(wrap(definition), f)
        result = subprocess.run(
            [str(Path(sys.executable).parent / "cfn-lint"), f.name], capture_output=True, text=True
        )
        Path(f.name).unlink()
        if result.returncode != 0:
            failed += 1
            print(f"{path}:\n{result.stdout}{result.stderr}", file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
