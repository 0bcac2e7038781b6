"""The runner's thin input layer: one input's bytes to records, as the engine's reader
(shared/etl-core/src/read.rs) splits them. No Spark here: the transform gets each record's
line, its fields as the text that was read, and malformed records with their raw text.

Fields are text; a JSON value that is not a string is its JSON text, flagged, since typing
treats it apart (a JSON number is never a boolean or a date).

These functions are the one parser: `read` applies them to a whole (small) input on the
driver, etl_spark.split to byte ranges and decompressed pieces on the executors.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BOM = b"\xef\xbb\xbf"


class InputError(Exception):
    """The input cannot be read at all (exit 4), naming the file and line."""


@dataclass
class Record:
    line: int
    texts: list[str | None] = field(default_factory=list)
    json_flags: list[bool] = field(default_factory=list)
    raw: str | None = None
    malformed: str | None = None

    def row(self, width: int) -> tuple:
        """The record as a row of transform's record frame."""
        return (self.line, self.malformed, self.raw, *(self.texts or [None] * width),
                *(self.json_flags or [False] * width))


@dataclass
class Input:
    format: str
    records: list[Record]
    found: list[str]
    dropped: list[str]
    bytes: int
    # A large input is read on the executors (etl_spark.split): then `records` is None and
    # `frame` holds them, already materialized, with `count` rows.
    frame: object = None
    count: int = 0

    @property
    def rows_in(self) -> int:
        return self.count if self.records is None else len(self.records)


def compression(name: str, head: bytes) -> str | None:
    """"gz", "zst" or None, from the name or, failing that, the first bytes (as the engine)."""
    lower = name.lower()
    if lower.endswith(".gz") or head.startswith(GZIP_MAGIC):
        return "gz"
    if lower.endswith(".zst") or head.startswith(ZSTD_MAGIC):
        return "zst"
    return None


def decompressed(chunks, kind: str | None, name: str):
    """Decompresses an iterator of byte chunks as it goes (concatenated gzip members and
    zstd frames too), so no more than a chunk's output is held at a time."""
    if kind is None:
        yield from chunks
        return
    new = (lambda: zlib.decompressobj(wbits=31)) if kind == "gz" else _zstd_decompressobj
    what = "gzip" if kind == "gz" else "zstd"
    obj, fed = new(), False
    try:
        for data in chunks:
            while data:
                fed = True
                out = obj.decompress(data)
                if out:
                    yield out
                if not obj.eof:
                    break
                # A member or frame ended: the rest is the next one.
                data, obj, fed = obj.unused_data, new(), False
        if fed and not obj.eof:
            raise InputError(f"{name}: not a valid {what} file: it ends inside a compressed block")
    except (zlib.error, _ZstdError) as e:
        raise InputError(f"{name}: not a valid {what} file: {e}") from e


def _zstd_decompressobj():
    import zstandard  # only where .zst input is read

    return zstandard.ZstdDecompressor().decompressobj()


try:
    from zstandard import ZstdError as _ZstdError
except ImportError:  # the runner without .zst support still reads everything else
    class _ZstdError(Exception):
        pass


def decompress(data: bytes, name: str) -> bytes:
    kind = compression(name, data[:4])
    if kind is None:
        return data
    return b"".join(decompressed([data], kind, name))


def resolve_format(declared: str, name: str, text: bytes) -> str:
    if declared != "auto":
        return declared
    lower = name.lower()
    for suffix in (".gz", ".zst"):
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
    if lower.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if lower.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    first = next((b for b in text[:65536] if b not in b" \t\r\n\x0b\x0c\xef\xbb\xbf"), None)
    if first == ord("["):
        return "json"
    if first == ord("{"):
        return "json" if lower.endswith(".json") else "ndjson"
    return "csv"


def read(data: bytes, name: str, plan: dict) -> Input:
    source = plan["source"]
    schema = [c["name"] for c in plan["schema"]]
    required = {c["name"] for c in plan["schema"] if c["required"]}
    text = decompress(data, name)
    if text.startswith(BOM):
        text = text[3:]
    fmt = resolve_format(source["format"], name, text)
    if fmt == "csv":
        delimiter = source["delimiter"] or ("\t" if ".tsv" in name.lower() else ",")
        records, found, dropped = _csv(text, name, schema, required, delimiter)
    else:
        records, found, dropped = _json(text, name, schema, fmt)
    if source["extra_columns"] == "fail" and dropped:
        what = "columns" if fmt == "csv" else "keys"
        raise InputError(f"{name}: {what} not in the schema: {', '.join(dropped)}")
    return Input(fmt, records, found, dropped, len(data))


def _csv_records(text: str, delimiter: str, line: int = 1):
    """(start line, raw record without its line end), as the csv crate splits records: a
    quote opens a quoted field only at a field's start; CR, LF and CRLF end records.
    `text` starts a record, on line `line`."""
    i, n = 0, len(text)
    while i < n:
        start, start_line = i, line
        quoted, at_field_start = False, True
        while i < n:
            c = text[i]
            if quoted:
                if c == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        i += 1
                    else:
                        quoted = False
                elif c == "\n":
                    line += 1
                i += 1
                continue
            if c == '"' and at_field_start:
                quoted = True
            elif c in "\r\n":
                break
            at_field_start = c == delimiter
            i += 1
        raw = text[start:i]
        if i < n and text[i] == "\r" and i + 1 < n and text[i + 1] == "\n":
            i += 1
        if i < n:
            i += 1
            line += 1
        if raw:
            yield start_line, raw


def _split_fields(raw: str, delimiter: str) -> list[str]:
    fields, cur, i, n = [], [], 0, len(raw)
    at_start, quoted = True, False
    while i < n:
        c = raw[i]
        if quoted:
            if c == '"':
                if i + 1 < n and raw[i + 1] == '"':
                    cur.append('"')
                    i += 1
                else:
                    quoted = False
            else:
                cur.append(c)
        elif c == '"' and at_start:
            quoted = True
            at_start = False
        elif c == delimiter:
            fields.append("".join(cur))
            cur, at_start = [], True
        else:
            cur.append(c)
            at_start = False
        i += 1
    fields.append("".join(cur))
    return fields


def _csv(data: bytes, name: str, schema: list[str], required: set[str], delimiter: str):
    text = data.decode("utf-8", errors="replace")
    records = _csv_records(text, delimiter)
    header = csv_header(next(records, None), name, schema, required, delimiter)
    if header is None:
        return [], [], []
    names, mapping = header
    out = list(csv_rows(records, names, mapping, delimiter))
    dropped = [n for n in names if n not in schema]
    return out, names, dropped


def csv_header(header, name: str, schema: list[str], required: set[str], delimiter: str):
    """(names, schema index -> field index) of the header record, or None when the input
    has no columns."""
    if header is None:
        return None
    names = [h.strip() for h in _split_fields(header[1], delimiter)]
    if names == [""]:
        return None
    seen = set()
    for n in names:
        if n in seen:
            raise InputError(f"{name} line 1: header names column '{n}' twice")
        seen.add(n)
    index = {n: i for i, n in enumerate(names)}
    for c in schema:
        if c in required and c not in index:
            raise InputError(
                f"{name} line 1: required column '{c}' is missing from the header "
                f"(found: {', '.join(names)})"
            )
    return names, [index.get(c) for c in schema]


def csv_rows(records, names: list[str], mapping: list[int | None], delimiter: str):
    """Records of the data records `_csv_records` split."""
    width = len(mapping)
    for line, raw in records:
        fields = _split_fields(raw, delimiter)
        if len(fields) != len(names):
            yield Record(line, raw=raw,
                         malformed=f"expected {len(names)} fields, found {len(fields)}")
            continue
        texts = [None if i is None else fields[i] for i in mapping]
        yield Record(line, texts, [False] * width)


def _reject_constant(c: str):
    raise ValueError(f"{c} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _json_text(v) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _kind(v) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
            str: "a string", list: "an array", dict: "an object"}[type(v)]


class _Keys:
    def __init__(self, schema: list[str]):
        self.schema = schema
        self.found: list[str] = []
        self.known = {".".join(c.split(".")[: i + 1]) for c in schema
                      for i in range(len(c.split(".")))}

    def observe(self, obj: dict, prefix: str = "") -> None:
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and path not in self.schema:
                self.observe(v, path)
            elif path not in self.found:
                self.found.append(path)


def _field(obj: dict, name: str):
    """(text, is_json) of a schema column in an object: an exact key, else a nested path."""
    if name in obj:
        v = obj[name]
    else:
        parts = name.split(".")
        if len(parts) < 2:
            return None, False
        cur = obj
        for depth, key in enumerate(parts):
            v = cur.get(key) if isinstance(cur, dict) else None
            if depth + 1 < len(parts):
                if not isinstance(v, dict):
                    return None, False
                cur = v
        if v is None:
            return None, False
    if v is None:
        return None, False
    if isinstance(v, str):
        return v, False
    return _json_text(v), True


def _object_record(value, line: int, raw: str, schema: list[str], keys: _Keys) -> Record:
    if not isinstance(value, dict):
        return Record(line, raw=raw, malformed=f"expected a JSON object, found {_kind(value)}")
    keys.observe(value)
    pairs = [_field(value, c) for c in schema]
    return Record(line, [t for t, _ in pairs], [j for _, j in pairs])


def ndjson_records(text: str, line: int, schema: list[str], keys: _Keys):
    """Records of NDJSON text that starts a line, on line `line`."""
    for number, body in enumerate(text.split("\n"), start=line):
        body = body.strip(" \t\r\n")
        if not body:
            continue
        try:
            value = _DECODER.decode(body)
        except ValueError as e:
            col = getattr(e, "colno", 0)
            yield Record(number, raw=body, malformed=f"invalid JSON at column {col}: {e}")
            continue
        yield _object_record(value, number, body, schema, keys)


def json_keys(schema: list[str]) -> _Keys:
    return _Keys(schema)


def dropped_keys(keys: _Keys) -> list[str]:
    return [p for p in keys.found if p not in keys.known]


def _json(data: bytes, name: str, schema: list[str], fmt: str):
    text = data.decode("utf-8", errors="replace")
    keys = _Keys(schema)
    out: list[Record] = []
    if fmt == "ndjson":
        out = list(ndjson_records(text, 1, schema, keys))
    else:
        i, n = 0, len(text)

        def skip(j: int) -> int:
            while j < n and text[j] in " \t\r\n":
                j += 1
            return j

        def decode(j: int):
            try:
                return _DECODER.raw_decode(text, j)
            except ValueError as e:
                raise InputError(f"{name} line {text.count(chr(10), 0, j) + 1}: invalid JSON: {e}") from e

        i = skip(i)
        if i < n and text[i] == "[":
            i = skip(i + 1)
            while i < n and text[i] != "]":
                value, end = decode(i)
                out.append(_object_record(value, text.count("\n", 0, i) + 1, text[i:end], schema, keys))
                i = skip(end)
                if i < n and text[i] == ",":
                    i = skip(i + 1)
        else:
            while i < n:
                value, end = decode(i)
                out.append(_object_record(value, text.count("\n", 0, i) + 1, text[i:end], schema, keys))
                i = skip(end)
    known = keys.known
    dropped = [p for p in keys.found if p not in known]
    return out, keys.found, dropped
