"""Shared counters: every test module adds what it compared, printed at the end of a run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

STATS = {"expressions": 0, "rows": 0, "values": 0, "engine_runs": 0}
NOTES: list[str] = []  # one line per test module, printed after the totals


def count(session, expressions: int) -> None:
    STATS["expressions"] += expressions
    STATS["rows"] += len(session.ids)
    STATS["values"] += expressions * len(session.ids)
    STATS["engine_runs"] += session.runs


def pytest_terminal_summary(terminalreporter):
    s = STATS
    if s["expressions"]:
        terminalreporter.write_line(
            f"semantics: compared {s['expressions']} expressions, {s['values']} values "
            f"(expression x row, over {s['rows']} base rows in all), "
            f"{s['engine_runs']} engine runs"
        )
    for line in NOTES:
        terminalreporter.write_line(f"semantics: {line}")
