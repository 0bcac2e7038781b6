"""The splitting reader (etl_spark.split) against reader.read on the whole input: the same
records (line, fields, malformed reason, raw text), found and dropped columns, and errors,
whatever the split size. Random dirty CSV and NDJSON (quoted newlines, stray and escaped
quotes, CR, CRLF, a BOM, empty lines, short records, no final line end), cut into ranges
of a few bytes and up, compressed or not. No Spark: the first pass runs in this process,
and the tasks' rows are the rows Spark would get (tests/spark/test_equivalence.py runs
the same through Spark against the engine).
"""

from __future__ import annotations

import gzip
import json
import random

import pytest
import zstandard

from etl_spark import reader, split
from etl_spark.source import LocalFile


class _Local:
    """The little of a SparkContext the first pass uses, run here."""

    def parallelize(self, items, _n):
        return self

    def __init__(self, items=()):
        self.items = list(items)

    def map(self, fn):
        return _Local(fn(x) for x in self.items)

    def collect(self):
        return self.items


class _Context(_Local):
    def parallelize(self, items, _n):
        return _Local(items)


def _plan(fmt: str, columns=("a", "b", "c"), required=("a",), extra="ignore"):
    return {"source": {"format": fmt, "delimiter": None, "extra_columns": extra},
            "schema": [{"name": c, "required": c in required} for c in columns]}


def _split_read(path, plan, split_bytes):
    """What split.read gives, without Spark: (format, rows, found, dropped)."""
    src = LocalFile(str(path))
    got = split.tasks(_Context(), src, plan, split_bytes)
    if isinstance(got, reader.Input):
        return got.format, [], got.found, got.dropped
    fmt, names, todo = got
    rows = [r for t in todo for r in split.task_rows(t)]
    summaries = [json.loads(r[2]) for r in rows if r[0] < 0]
    found, dropped, count = split.summarize(plan, src.name, fmt, names, todo, summaries)
    records = [r for r in rows if r[0] >= 0]
    assert count == len(records)
    return fmt, records, found, dropped


def _whole_read(path, plan):
    got = reader.read(path.read_bytes(), str(path), plan)
    width = len(plan["schema"])
    return got.format, [r.row(width) for r in got.records], got.found, got.dropped


def _outcome(fn):
    try:
        return fn()
    except reader.InputError as e:
        return f"InputError: {e}"


def _dirty_csv(rng: random.Random, crlf: bool) -> bytes:
    pieces = ['"x\ny"', '"q""r"', 'ab"c', '"o"k', '""', "", "é", "1", "22", '"\r\n"', "\r",
              '"', "z", " "]
    nl = "\r\n" if crlf else "\n"
    lines = ["a,b,c"]
    for _ in range(rng.randrange(0, 40)):
        n = rng.choice([3, 3, 3, 3, 2, 4, 0])
        lines.append(",".join(rng.choice(pieces) for _ in range(n)))
    text = nl.join(lines)
    if rng.random() < 0.7:
        text += nl
    if rng.random() < 0.3:
        text = "\ufeff" + text
    if rng.random() < 0.2:
        text = nl + nl + text
    return text.encode()


def _dirty_ndjson(rng: random.Random) -> bytes:
    values = ['{"a": "1", "b": 2}', '{"a": "x\\ny", "c": {"d": true}}', "{bad", "[1]", "",
              "   ", '{"a": "é", "e": null}\r', '{"f": 1, "a": "2"}', '"s"']
    text = "\n".join(rng.choice(values) for _ in range(rng.randrange(0, 40)))
    if rng.random() < 0.7:
        text += "\n"
    if rng.random() < 0.3:
        text = "\ufeff" + text
    return text.encode()


def _compress(data: bytes, how: str) -> bytes:
    if how == "gz":
        return gzip.compress(data, mtime=0)
    if how == "zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize("how", ["", "gz", "zst"])
@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_split_reading_gives_the_whole_reading(tmp_path, fmt, how):
    rng = random.Random(f"{fmt}{how}")
    for n in range(150):
        data = _dirty_csv(rng, n % 3 == 0) if fmt == "csv" else _dirty_ndjson(rng)
        path = tmp_path / (f"in{n}.{fmt}" + (f".{how}" if how else ""))
        path.write_bytes(_compress(data, how))
        plan = _plan("auto")
        want = _outcome(lambda: _whole_read(path, plan))
        for size in {1, 2, 3, 5, 8, 13, 40, rng.randrange(1, len(data) + 2)}:
            got = _outcome(lambda: _split_read(path, plan, size))
            assert got == want, f"{data!r} split every {size} bytes"


def test_every_cut_of_a_quoted_csv(tmp_path):
    """Each byte position of a CSV with quoted newlines, escaped quotes and CRLF as a
    range's start: the parser state there comes from the first pass."""
    data = ('a,b,c\r\n"1\r\n2",x,"y""\n"\r\n\r\n3,"",z\n4,"q\rr",\n5,"a""b",c"d\r'
            '6,7,8').encode()
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    plan = _plan("csv")
    want = _whole_read(path, plan)
    for size in range(1, len(data) + 1):
        assert _split_read(path, plan, size) == want, f"split every {size} bytes"


@pytest.mark.parametrize("extra", ["fail", "ignore"])
def test_header_errors_and_extra_columns_as_the_whole_reading(tmp_path, extra):
    cases = [b"a,b,c,d\n1,2,3,4\n", b"b,c\n1,2\n", b"a,a\n1,1\n", b'\n\n""\n1,2\n', b"",
             b'\n"a\nx",b\n1,2\n']
    plan = _plan("csv", extra=extra)
    for n, data in enumerate(cases):
        path = tmp_path / f"h{n}.csv"
        path.write_bytes(data)
        want = _outcome(lambda: _whole_read(path, plan))
        for size in (1, 2, 7):
            assert _outcome(lambda: _split_read(path, plan, size)) == want, data


def test_ndjson_keys_not_in_the_schema_fail_as_the_whole_reading(tmp_path):
    path = tmp_path / "in.ndjson"
    path.write_bytes(b'{"a": "1"}\n{"a": "2", "z": {"y": 1}}\n{"w": 1}\n')
    plan = _plan("ndjson", extra="fail")
    want = _outcome(lambda: _whole_read(path, plan))
    assert want.startswith("InputError")
    assert _outcome(lambda: _split_read(path, plan, 5)) == want


def test_a_json_array_and_a_bad_compressed_file_are_one_task(tmp_path):
    path = tmp_path / "in.json"
    path.write_bytes(b'[{"a": "1", "q": 1},\n{"a": "2"}, 3]')
    plan = _plan("auto")
    assert _split_read(path, plan, 4) == _whole_read(path, plan)
    bad = tmp_path / "bad.csv.zst"
    bad.write_bytes(zstandard.ZstdCompressor().compress(b"a,b\n1,2\n" * 50)[:-4])
    want = _outcome(lambda: _whole_read(bad, plan))
    assert want.startswith("InputError")
    assert _outcome(lambda: _split_read(bad, plan, 4)) == want
