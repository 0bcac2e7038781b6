"""Reading a large input on the executors, so no process holds the whole file.

An input no larger than the split size (compressed: a 16th of it) is read on the driver,
whole (reader.read). A larger one is read by Spark tasks, and the driver reads only its
first bytes (format, BOM, CSV header):

- Uncompressed CSV and NDJSON are cut into byte ranges of the split size, one task each.
  A record belongs to the range it starts in; a task reads from the first record start at
  or after its range's start to the first one at or after its end. NDJSON records start
  after a newline (a JSON string holds no raw newline). A CSV newline may sit inside a
  quoted field, so where records start depends on everything before: a first pass computes,
  per range and for each state the CSV parser can be in at the range's start, the state at
  its end and the lines it holds (`transfer`); the driver chains them from the start of the
  file, which gives each range's exact starting state and line number. (Counting quotes
  is not enough: a quote opens a quoted field only at a field's start, `ab"c` is text.)
- Compressed input (.gz, .zst) cannot be entered in the middle, and a JSON array or a run
  of JSON values can only be parsed from its start: one task reads it. It streams a
  compressed CSV or NDJSON piece by piece; a JSON document is parsed whole, in that task.

Records are parsed by reader's functions, so every line number, malformed record, raw text
and found/dropped column is what reader.read gives for the whole file. Each task ends its
records with one summary row (negative line), holding what it found: the driver collects
only those, after the records are materialized on the executors (localCheckpoint).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from . import reader

DEFAULT_SPLIT_BYTES = 64 << 20
# How much a task reads at a time, and the most a reading holds besides one record.
CHUNK_BYTES = 4 << 20
HEAD_BYTES = 1 << 16
COMPRESSION_RATIO = 16
SUMMARY = "__summary"

# States of reader._csv_records at a byte: at a record's start, at a field's start, inside
# an unquoted field, inside a quoted field, just after a quote inside a quoted field (an
# escaped quote or the closing one: the next byte tells), just after a CR ending a record
# (a LF next is part of that line end).
RS, S, U, Q, QQ, R = range(6)
_LF, _QUOTE = 10, 34


class _Csv:
    """Where CSV records start, from bytes, as reader._csv_records splits them."""

    def __init__(self, delimiter: str):
        d = re.escape(delimiter.encode())
        field = rb'(?:[^"' + d + rb"\r\n][^" + d + rb"\r\n]*)?"
        # Fields that do not open with a quote, and the delimiters between them.
        self.fields = re.compile(field + rb"(?:" + d + field + rb")*")
        self.rest = re.compile(rb"[^" + d + rb"\r\n]*")  # an unquoted field's remainder
        self.quoted = re.compile(rb'[^"]*(?:""[^"]*)*')  # up to the closing quote
        self.delimiter = delimiter.encode()[0]

    def starts(self, data: bytes, pos: int, state: int, out: list):
        """Yields (record start, lone CRs before it) for each record start in data[pos:]
        (pos itself in state RS); then `out` holds [state at the end, lone CRs]. Lines
        between two positions are their LFs plus the CRs that end a record alone."""
        n, extra = len(data), 0
        while pos < n:
            if state == R:
                if data[pos] == _LF:
                    pos, extra = pos + 1, extra - 1
                state = RS
                continue
            if state == RS:
                yield pos, extra
                state = S
            if state == QQ:
                if data[pos] == _QUOTE:
                    pos, state = pos + 1, Q
                    continue
                state = U
            if state == Q:
                pos = self.quoted.match(data, pos).end()
                if pos >= n:
                    break
                # A single quote: it closes the field, unless the data ends with it.
                pos += 1
                state = QQ if pos >= n else U
                continue
            if state == S:
                start = pos
                pos = self.fields.match(data, pos).end()
                # Still at a field's start after no field or a delimiter, else inside one.
                at_start = pos == start or data[pos - 1] == self.delimiter
                state = S if at_start else U
            else:  # U
                pos = self.rest.match(data, pos).end()
            if pos >= n:
                break
            c = data[pos]
            pos += 1
            if c == self.delimiter:
                state = S
            elif c == _QUOTE:  # only at a field's start: elsewhere the patterns take it
                state = Q
            elif c == _LF:
                state = RS
            else:  # CR
                state, extra = R, extra + 1
        out[:] = [state, extra]

    def transfer(self, data: bytes) -> list[tuple[int, int]]:
        """Per start state: (state at the end of data, lines in data). The scan from RS is
        done once; a scan from another state stops where it meets that one at a record
        start, since from there on they are the same."""
        newlines = data.count(b"\n")
        alts, pending = {}, {}
        for s in (U, Q, QQ, R):
            end: list = []
            it = self.starts(data, 0, s, end)
            alts[s], pending[s] = (it, end), next(it, None)
        own: dict[int, tuple[int, int]] = {}  # ran to the end apart: (state, lone CRs)
        met: dict[int, int] = {}  # met the scan from RS: its lone CRs minus that one's
        main: list = []
        for p, extra in self.starts(data, 0, RS, main):
            for s, ev in list(pending.items()):
                it, end = alts[s]
                while ev is not None and ev[0] < p:
                    ev = next(it, None)
                if ev is None:
                    own[s] = (end[0], end[1])
                    del pending[s]
                elif ev[0] == p:
                    met[s] = ev[1] - extra
                    del pending[s]
                else:
                    pending[s] = ev
        for s in pending:
            it, end = alts[s]
            for _ in it:
                pass
            own[s] = (end[0], end[1])
        state, extra = main
        out = {RS: (state, newlines + extra), S: (state, newlines + extra)}
        out.update({s: (state, newlines + extra + d) for s, d in met.items()})
        out.update({s: (st, newlines + e) for s, (st, e) in own.items()})
        return [out[s] for s in range(6)]


@dataclass(frozen=True)
class File:
    """What every task of one input shares."""

    source: object
    name: str
    plan: dict
    fmt: str
    compression: str | None
    chunk: int
    delimiter: str = ","
    names: tuple = ()
    mapping: tuple = ()


@dataclass(frozen=True)
class Task:
    """Records starting in [start, end) (end None: to the end); `state` and `line` are the
    parser's at `start`, `end_state` at `end`. kind "range": a byte range of the object;
    "stream": the decompressed object from `start`; "whole": reader.read on all of it."""

    file: File
    index: int
    kind: str
    start: int = 0
    end: int | None = None
    state: int = RS
    line: int = 1
    end_state: int = RS


def _ranges(src, start: int, end: int, chunk: int):
    while start < end:
        data = src.read_range(start, min(end, start + chunk))
        if not data:
            return
        yield data
        start += len(data)


def _first_start(f: File, pos: int, state: int, lo: int):
    """(first record start at or after pos, lines from pos to it), or None at the end of
    the object. `lo` is where the data starts (a record start)."""
    src, step, lines = f.source, min(HEAD_BYTES, f.chunk), 0
    if f.fmt == "ndjson":
        if pos <= lo or src.read_range(pos - 1, pos) == b"\n":
            return pos, 0
        while True:
            data = src.read_range(pos, pos + step)
            if not data:
                return None
            i = data.find(b"\n")
            if i >= 0:
                return pos + i + 1, 1
            pos, step = pos + len(data), min(step * 2, f.chunk)
    scan = _Csv(f.delimiter)
    while True:
        data = src.read_range(pos, pos + step)
        if not data:
            return None
        end: list = []
        for p, extra in scan.starts(data, 0, state, end):
            return pos + p, lines + data.count(b"\n", 0, p) + extra
        state, lines = end[0], lines + data.count(b"\n") + end[1]
        pos, step = pos + len(data), min(step * 2, f.chunk)


def _pieces(f: File, chunks, line: int):
    """(bytes, first line) of data that starts a record, cut at record starts, so a piece
    is at most about a chunk plus one record."""
    scan = _Csv(f.delimiter) if f.fmt == "csv" else None
    buf, pos, state, base = b"", 0, RS, 0  # scanned to pos, in state, lone CRs before pos
    for chunk in chunks:
        buf += chunk
        if scan is None:
            cut = buf.rfind(b"\n") + 1
            lines = buf.count(b"\n", 0, cut)
        else:
            end: list = []
            cut, at = 0, 0
            for p, extra in scan.starts(buf, pos, state, end):
                cut, at = p, extra
            pos, state = len(buf), end[0]
            lines = buf.count(b"\n", 0, cut) + base + at
            base = end[1] - at if cut else base + end[1]
        if cut:
            yield buf[:cut], line
            line += lines
            buf, pos = buf[cut:], max(0, pos - cut)
    if buf:
        yield buf, line


def _records(t: Task, keys):
    f = t.file
    schema = [c["name"] for c in f.plan["schema"]]
    if t.kind == "range":
        first = _first_start(f, t.start, t.state, _data_start(t))
        if first is None or first[0] >= t.end:
            return
        p0, line = first[0], t.line + first[1]
        last = _first_start(f, t.end, t.end_state, _data_start(t))
        p1 = f.source.size if last is None else last[0]
        chunks = _ranges(f.source, p0, p1, f.chunk)
    else:
        chunks = reader.decompressed(_ranges(f.source, 0, f.source.size, f.chunk),
                                     f.compression, f.name)
        chunks, line = _skip(chunks, t.start), t.line
    for piece, first_line in _pieces(f, chunks, line):
        text = piece.decode("utf-8", errors="replace")
        if f.fmt == "csv":
            records = reader._csv_records(text, f.delimiter, first_line)
            yield from reader.csv_rows(records, list(f.names), list(f.mapping), f.delimiter)
        else:
            yield from reader.ndjson_records(text, first_line, schema, keys)


def _data_start(t: Task) -> int:
    # The first task starts where the data does (after the BOM or the CSV header): a
    # record starts there whatever the byte before it.
    return t.start if t.index == 0 else -1


def _skip(chunks, n: int):
    for c in chunks:
        if n >= len(c):
            n -= len(c)
            continue
        yield c[n:]
        n = 0


def task_rows(t: Task):
    """A task's record rows, then its summary row."""
    f = t.file
    schema = [c["name"] for c in f.plan["schema"]]
    width = len(schema)
    keys = reader.json_keys(schema)
    summary = {"index": t.index, "rows": 0, "found": None, "dropped": None, "error": None}
    try:
        if t.kind == "whole":
            data = b"".join(_ranges(f.source, 0, f.source.size, f.chunk))
            got = reader.read(data, f.name, f.plan)
            del data
            summary.update(found=got.found, dropped=got.dropped, format=got.format)
            records = got.records
        else:
            records = _records(t, keys)
        for r in records:
            summary["rows"] += 1
            yield r.row(width)
        if t.kind != "whole" and f.fmt != "csv":
            summary["found"] = keys.found
    except reader.InputError as e:
        summary["error"] = str(e)
    yield (-1 - t.index, SUMMARY, json.dumps(summary), *[None] * width, *[False] * width)


def read(spark, src, plan: dict, split_bytes: int | None = None) -> reader.Input:
    """The input's records: reader.read's on the driver if it is no larger than
    `split_bytes`, else read by tasks (module doc) into a frame materialized on the
    executors. Raises reader.InputError as reader.read does."""
    from pyspark.sql import functions as F

    from . import transform

    split_bytes = split_bytes or DEFAULT_SPLIT_BYTES
    # Compressed text is many times its size once read.
    if src.size <= split_bytes // (COMPRESSION_RATIO if _compressed(src) else 1):
        return reader.read(src.read_all(), src.name, plan)
    got = tasks(spark.sparkContext, src, plan, split_bytes)
    if isinstance(got, reader.Input):
        return got
    fmt, names, todo = got
    width = len(plan["schema"])
    rows = spark.sparkContext.parallelize(todo, len(todo)).flatMap(task_rows)
    frame = spark.createDataFrame(rows, transform.record_schema(width)).localCheckpoint(eager=True)
    line = F.col(transform.LINE)
    summaries = [json.loads(r[0]) for r in frame.filter(line < 0).select("_raw").collect()]
    found, dropped, count = summarize(plan, src.name, fmt, names, todo, summaries)
    return reader.Input(fmt, None, found, dropped, src.size, frame=frame.filter(line >= 0),
                        count=count)


def tasks(sc, src, plan: dict, split_bytes: int):
    """(format, CSV header names, tasks) of an input read by tasks, or its Input when it
    has no records (a CSV without columns). Runs the first pass on `sc`."""
    name, size = src.name, src.size
    source = plan["source"]
    schema = [c["name"] for c in plan["schema"]]
    required = {c["name"] for c in plan["schema"] if c["required"]}
    kind = reader.compression(name, src.read_range(0, 4))
    chunk = max(1, min(CHUNK_BYTES, split_bytes))
    decoded = reader.decompressed(_ranges(src, 0, size, chunk), kind, name)
    head = _take(decoded, b"", HEAD_BYTES + len(reader.BOM))
    bom = len(reader.BOM) if head.startswith(reader.BOM) else 0
    fmt = reader.resolve_format(source["format"], name, head[bom:])
    f = File(src, name, plan, fmt, kind, chunk)
    delimiter = source["delimiter"] or ("\t" if ".tsv" in name.lower() else ",")
    if fmt == "json" or (fmt == "csv" and not _splittable(delimiter)):
        return fmt, None, [Task(f, 0, "whole")]
    if fmt == "ndjson":
        return fmt, None, _tasks(sc, f, bom, 1, size, split_bytes)
    header = _csv_header(decoded, head, bom, name, schema, required, delimiter)
    if header is None:
        return reader.Input(fmt, [], [], [], size)
    names, mapping, start, line = header
    dropped = [n for n in names if n not in schema]
    if source["extra_columns"] == "fail" and dropped:
        raise reader.InputError(f"{name}: columns not in the schema: {', '.join(dropped)}")
    f = File(src, name, plan, fmt, kind, chunk, delimiter, tuple(names), tuple(mapping))
    return fmt, names, _tasks(sc, f, start, line, size, split_bytes)


def summarize(plan: dict, name: str, fmt: str, names, todo: list[Task], summaries: list[dict]):
    """(found, dropped, rows) from the tasks' summary rows; raises the first task's error."""
    schema = [c["name"] for c in plan["schema"]]
    summaries = sorted(summaries, key=lambda s: s["index"])
    for s in summaries:
        if s["error"]:
            raise reader.InputError(s["error"])
    count = sum(s["rows"] for s in summaries)
    if todo[0].kind == "whole":
        return summaries[0]["found"], summaries[0]["dropped"], count
    if fmt == "csv":
        return list(names), [n for n in names if n not in schema], count
    keys = reader.json_keys(schema)  # the union, in order of first appearance
    for s in summaries:
        keys.found.extend(k for k in s["found"] if k not in keys.found)
    dropped = reader.dropped_keys(keys)
    if plan["source"]["extra_columns"] == "fail" and dropped:
        raise reader.InputError(f"{name}: keys not in the schema: {', '.join(dropped)}")
    return keys.found, dropped, count


def _compressed(src) -> bool:
    return reader.compression(src.name, src.read_range(0, 4)) is not None


def _splittable(delimiter: str) -> bool:
    b = delimiter.encode()
    return len(b) == 1 and b not in (b'"', b"\r", b"\n")


def _take(chunks, buf: bytes, n: int) -> bytes:
    """buf extended from chunks to at least n bytes (fewer at the end)."""
    parts = [buf]
    have = len(buf)
    for c in chunks:
        parts.append(c)
        have += len(c)
        if have >= n:
            break
    return b"".join(parts)


def _csv_header(decoded, buf: bytes, bom: int, name, schema, required, delimiter):
    """(names, mapping, where the data starts, its line) of the header, read from the
    decoded stream as far as its end; None when the input has no columns."""
    scan = _Csv(delimiter)
    while True:
        end: list = []
        starts = list(scan.starts(buf, bom, RS, end))
        starts.append((len(buf), end[1]))
        header = None
        for (p, _), (q, extra) in zip(starts, starts[1:]):
            if buf[p:q].strip(b"\r\n") and (q < len(buf) or end[0] == RS):
                header = q, extra
                break
        if header is None:
            more = _take(decoded, buf, 2 * len(buf) + 1)
            if len(more) > len(buf):
                buf = more
                continue
        start, extra = header or (len(buf), end[1])
        text = buf[bom:start].decode("utf-8", errors="replace")
        got = reader.csv_header(next(reader._csv_records(text, delimiter), None), name,
                                schema, required, delimiter)
        if got is None:
            return None
        return (*got, start, 1 + buf.count(b"\n", bom, start) + extra)


def _tasks(sc, f: File, start: int, line: int, size: int, split_bytes: int) -> list[Task]:
    if f.compression:
        return [Task(f, 0, "stream", start, None, RS, line)]
    bounds = list(range(start, size, split_bytes)) + [size]
    ranges = list(zip(bounds, bounds[1:])) or [(start, start)]
    # The first pass: per range, the lines and (CSV) the parser's state it ends in.
    passes = sc.parallelize([(f, a, b) for a, b in ranges[:-1]],
                                            max(1, len(ranges) - 1)).map(_transfer).collect()
    tasks, state = [], RS
    for i, (a, b) in enumerate(ranges):
        end_state, lines = passes[i][state] if i < len(passes) else (RS, 0)
        tasks.append(Task(f, i, "range", a, b, state, line, end_state))
        state, line = end_state, line + lines
    return tasks


def _transfer(job) -> list[tuple[int, int]]:
    f, a, b = job
    data = f.source.read_range(a, b)
    if f.fmt == "csv":
        return _Csv(f.delimiter).transfer(data)
    return [(RS, data.count(b"\n"))] * 6
