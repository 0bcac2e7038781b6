"""Runs spec expressions through the `etl` binary and through DuckDB, and compares them.

The engine side: a CSV of typed base columns (with an `id` column) and a spec with one
`derive: {column: e<N>, sql: ...}` step per expression go through `etl run --json`; the
output Parquet is read back with DuckDB. The reference side: DuckDB evaluates the same
expressions (translated where names differ, see `to_duckdb`) over the engine's own output
base columns, so both sides see identical typed inputs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Callable

import duckdb

REPO = Path(__file__).resolve().parents[2]
TRIPLE = "x86_64-unknown-linux-gnu"
I64_MIN, I64_MAX = -(2**63), 2**63 - 1

# Expressions per engine run: one process per chunk keeps start-up cost low, and a chunk
# that fails is bisected, so one bad expression costs about log2(CHUNK) extra runs.
CHUNK = 200
# After a failure the rest of a chunk reruns in groups this size (a run of 200 expressions
# takes about 10 times as long as a run of 20).
RETRY_CHUNK = 20


def etl_binary() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    path = Path(target) / TRIPLE / "release" / "etl"
    if not path.is_file():
        raise RuntimeError(
            f"the engine binary {path} is missing: build it with "
            "`cargo build --release -p etl-cli --locked` (or set CARGO_TARGET_DIR)"
        )
    return path


# ---------------------------------------------------------------------------------------
# Translation of engine syntax to DuckDB. Kept tiny on purpose: each rule is a name that
# differs, not a semantic patch.
#   1. regexp_like(s, p)            -> regexp_matches(s, p)   (DuckDB's name)
#   2. TIMESTAMP '...+02:00' / 'Z'   -> CAST(TIMESTAMPTZ '...' AS TIMESTAMP): DuckDB's
#      TIMESTAMP literal drops an offset, the engine (timestamps are UTC instants) applies it.
#   3. bigint_literals=True: integer literals become BIGINT. DuckDB types them INTEGER and
#      overflows INT32 in literal-only arithmetic; the engine has only bigint. Used only as a
#      retry when DuckDB reports an INT32 overflow.
# ---------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""(?P<str>'(?:[^']|'')*')
      | (?P<qid>"(?:[^"]|"")*")
      | (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
      | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<ws>\s+)
      | (?P<op>.)""",
    re.VERBOSE | re.DOTALL,
)
_OFFSET = re.compile(r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$")


def tokens(sql: str) -> list[tuple[str, str]]:
    return [(m.lastgroup, m.group()) for m in _TOKEN.finditer(sql)]


def to_duckdb(sql: str, bigint_literals: bool = False) -> str:
    toks = tokens(sql)
    out: list[str] = []
    i = 0
    type_params = 0  # inside decimal( .. ): numbers there are not literals
    while i < len(toks):
        kind, text = toks[i]
        nxt = next((t for t in toks[i + 1 :] if t[0] != "ws"), None)
        if kind == "id" and text.lower() == "regexp_like":
            out.append("regexp_matches")
        elif (
            kind == "id"
            and text.lower() == "timestamp"
            and nxt is not None
            and nxt[0] == "str"
            and _OFFSET.search(nxt[1][1:-1].strip())
        ):
            out.append(f"CAST(TIMESTAMPTZ {nxt[1]} AS TIMESTAMP)")
            i = toks.index(nxt, i + 1)
        elif kind == "id" and text.lower() in ("decimal", "numeric") and nxt == ("op", "("):
            out.append(text)
            type_params = 1
        elif type_params and kind == "op" and text == ")":
            out.append(text)
            type_params = 0
        elif (
            bigint_literals
            and not type_params
            and kind == "num"
            and text.isdigit()
        ):
            out.append(f"CAST({text} AS BIGINT)")
        else:
            out.append(text)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------
# Base data
# ---------------------------------------------------------------------------------------
DUCK_TYPE = {
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def duck_type(spec_type: str) -> str:
    if spec_type.startswith("decimal"):
        return spec_type.upper()
    return DUCK_TYPE[spec_type]


@dataclass
class Base:
    """Typed columns as CSV text (None is an empty field, i.e. NULL); `id` is added."""

    columns: dict[str, str]  # name -> spec type
    rows: list[dict[str, str | None]]

    def csv(self) -> str:
        names = ["id", *self.columns]
        lines = [",".join(names)]
        for i, row in enumerate(self.rows):
            fields = [str(i)]
            for name in self.columns:
                v = row.get(name)
                fields.append("" if v is None else _csv_field(v))
            lines.append(",".join(fields))
        return "\n".join(lines) + "\n"


def _csv_field(v: str) -> str:
    if any(c in v for c in ',"\n\r') or v != v.strip(" "):
        return '"' + v.replace('"', '""') + '"'
    return v


def _yaml_str(s: str) -> str:
    # A JSON string is a YAML double-quoted scalar; raw UTF-8 keeps astral characters whole.
    return json.dumps(s, ensure_ascii=False)


def spec_yaml(base: Base, exprs: list[str]) -> str:
    lines = [
        "name: sem",
        "source: {prefix: sem/, format: csv, null_values: []}",
        "schema:",
        "  - {name: id, type: bigint, required: true}",
    ]
    for name, ty in base.columns.items():
        lines.append(f"  - {{name: {name}, type: {_yaml_str(ty)}}}")
    lines.append("steps:" if exprs else "steps: []")
    for n, e in enumerate(exprs):
        lines.append(f"  - derive: {{column: e{n}, sql: {_yaml_str(e)}}}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One expression's result on one side: values by row id and a type, or an error."""

    values: list | None = None
    type: str | None = None  # DuckDB type name of the column
    error: str | None = None
    refused: bool = False  # engine only: the spec was refused at load (exit 3)
    crashed: bool = False  # engine only: a panic or an exit code README does not list


def family(type_name: str | None):
    """The comparable part of a type: the family, and the scale for decimals."""
    if type_name is None or type_name == '"NULL"' or type_name == "NULL":
        return None
    t = type_name.upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
             "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"):
        return "bigint"
    if t in ("DOUBLE", "FLOAT"):
        return "double"
    if t.startswith("DECIMAL"):
        m = re.match(r"DECIMAL\((\d+),\s*(\d+)\)", t)
        return ("decimal", int(m.group(2))) if m else ("decimal", None)
    if t == "VARCHAR":
        return "string"
    if t == "BOOLEAN":
        return "boolean"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return t


class Session:
    """One base table, a work folder and a DuckDB connection holding the engine's base."""

    def __init__(self, base: Base, workdir: Path | None = None):
        self.etl = etl_binary()
        self.base = base
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="semantics-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.input = self.dir / "base.csv"
        self.input.write_text(base.csv(), encoding="utf-8")
        self.runs = 0
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone='UTC'")
        ok, out, err = self._run([])
        if not ok:
            raise RuntimeError(f"the engine refused the base table alone: {err}")
        counts = out["_manifest"]["counts"]
        if counts["quarantined"] or counts["duplicates"]:
            raise RuntimeError(f"the engine dropped base rows: {counts}")
        # The reference sees the engine's output base columns, typed as the spec says
        # (a Parquet UTC timestamp reads as TIMESTAMPTZ; the model is a TIMESTAMP in UTC).
        cols = ", ".join(
            f'CAST("{n}" AS {duck_type(t)}) AS "{n}"'
            for n, t in {"id": "bigint", **base.columns}.items()
        )
        self.con.execute(
            f"CREATE TABLE base AS SELECT {cols} FROM read_parquet({out['_glob']!r})"
        )
        self.ids = [r[0] for r in self.con.execute("SELECT id FROM base ORDER BY id").fetchall()]
        if len(self.ids) != len(base.rows):
            raise RuntimeError(f"the engine kept {len(self.ids)} of {len(base.rows)} base rows")
        self.base_rows = self.con.execute("SELECT * FROM base ORDER BY id").fetchall()
        self.base_names = [d[0] for d in self.con.description]

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def row(self, idx: int) -> dict:
        return dict(zip(self.base_names, self.base_rows[idx]))

    # -- engine ---------------------------------------------------------------------
    def _run(self, exprs: list[str]):
        self.runs += 1
        run_dir = self.dir / f"run{self.runs}"
        spec = run_dir / "spec.yaml"
        out = run_dir / "out"
        run_dir.mkdir()
        spec.write_text(spec_yaml(self.base, exprs), encoding="utf-8")
        p = subprocess.run(
            [str(self.etl), "run", "--spec", str(spec), "--input", str(self.input),
             "--output", str(out), "--json", "--threads", "1"],
            capture_output=True, text=True, timeout=300,
        )
        if p.returncode != 0:
            shutil.rmtree(run_dir, ignore_errors=True)
            msg = _error_text(p.stderr.strip() or p.stdout.strip())
            return False, p.returncode, msg
        manifest = json.loads(p.stdout)
        files = sorted((out / "sem").rglob("*.parquet"))
        if not files:
            raise RuntimeError(f"engine run wrote no Parquet under {out / 'sem'}")
        return True, {"_manifest": manifest, "_glob": str(out / "sem" / "**" / "*.parquet"),
                      "_dir": run_dir}, ""

    def _engine_items(self, items: list[tuple[int, str]], results: dict[int, Outcome]):
        """Runs (index, expression) pairs in one spec; a failing run is split up."""
        items = list(items)
        while True:
            ok, out, err = self._run([e for _, e in items])
            if ok:
                break
            if len(items) == 1:
                crashed = out not in (1, 3, 4) or "panicked" in err
                results[items[0][0]] = Outcome(error=err, refused=(out == 3), crashed=crashed)
                return
            # Errors name the step (`steps[3].derive`): set that expression aside and rerun
            # the others; without a step, bisect.
            k = _failed_step(err)
            if k is not None and k < len(items):
                idx, _ = items.pop(k)
                crashed = out not in (1, 3, 4) or "panicked" in err
                results[idx] = Outcome(error=err, refused=(out == 3), crashed=crashed)
                if len(items) <= RETRY_CHUNK:
                    continue
                # More failures are likely: rerun in small groups, which start faster.
                parts = [items[i : i + RETRY_CHUNK] for i in range(0, len(items), RETRY_CHUNK)]
            else:
                parts = [items[: len(items) // 2], items[len(items) // 2 :]]
            for part in parts:
                self._engine_items(part, results)
            return
        self._collect(out, items, results)

    def _collect(self, out: dict, items: list[tuple[int, str]], results: dict[int, Outcome]):
        exprs = [e for _, e in items]
        glob = out["_glob"]
        desc = self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({glob!r})").fetchall()
        types = {r[0]: r[1] for r in desc}
        sel = []
        for n in range(len(exprs)):
            t = types.get(f"e{n}")
            if t is None:
                raise RuntimeError(f"engine output lacks column e{n}: {sorted(types)}")
            # Read a UTC timestamp back as the TIMESTAMP the model uses.
            col = f'"e{n}"'
            sel.append(f"CAST({col} AS TIMESTAMP)" if t.startswith("TIMESTAMP WITH") else col)
        rows = self.con.execute(
            f"SELECT {', '.join(['id', *sel])} FROM read_parquet({glob!r}) ORDER BY id"
        ).fetchall() if sel else []
        if [r[0] for r in rows] != self.ids and sel:
            raise RuntimeError("engine output rows differ from the base rows")
        for n, (idx, _) in enumerate(items):
            results[idx] = Outcome(values=[r[n + 1] for r in rows], type=types[f"e{n}"])
        shutil.rmtree(out["_dir"], ignore_errors=True)

    def engine(self, exprs: list[str], chunk: int = CHUNK) -> list[Outcome]:
        """Engine outcomes; pass chunk=1 for expressions expected to error (no bisecting)."""
        results: dict[int, Outcome] = {}
        for start in range(0, len(exprs), chunk):
            self._engine_items(list(enumerate(exprs))[start : start + chunk], results)
        return [results[i] for i in range(len(exprs))]

    # -- DuckDB ---------------------------------------------------------------------
    def duck(self, expr: str) -> Outcome:
        out = self._duck_once(to_duckdb(expr))
        if out.error and "INT32" in out.error:
            out = self._duck_once(to_duckdb(expr, bigint_literals=True))
        return out

    def ducks(self, exprs: list[str], chunk: int = 100) -> list[Outcome]:
        """DuckDB outcomes of many expressions: one query per chunk, and one query per
        expression in a chunk where any of them errors."""
        out: list[Outcome] = []
        for start in range(0, len(exprs), chunk):
            part = exprs[start : start + chunk]
            cols = ", ".join(f"({to_duckdb(e)}) AS v{n}" for n, e in enumerate(part))
            try:
                rel = self.con.sql(f"SELECT id, {cols} FROM base ORDER BY id")
                types = [str(t) for t in rel.types[1:]]
                rows = rel.fetchall()
            except duckdb.Error:
                out.extend(self.duck(e) for e in part)
                continue
            out.extend(
                Outcome(values=[r[n + 1] for r in rows], type=types[n]) for n in range(len(part))
            )
        return out

    def duck_sql(self, sql: str) -> Outcome:
        """DuckDB on its own SQL, untranslated."""
        return self._duck_once(sql)

    def _duck_once(self, sql: str) -> Outcome:
        try:
            rel = self.con.sql(f"SELECT id, ({sql}) AS v FROM base ORDER BY id")
            ty = str(rel.types[1])
            rows = rel.fetchall()
        except duckdb.Error as e:
            return Outcome(error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
        return Outcome(values=[r[1] for r in rows], type=ty)

    # -- both -----------------------------------------------------------------------
    def compare(self, exprs: list[str]) -> list["Mismatch"]:
        """Every disagreement between the engine and DuckDB on these expressions."""
        found = []
        for expr, e, d in zip(exprs, self.engine(exprs), self.ducks(exprs)):
            found.extend(self.diff(expr, e, d))
        return found

    def diff(self, expr: str, e: Outcome, d: Outcome) -> list["Mismatch"]:
        if e.error is not None or d.error is not None:
            if e.error is not None and d.error is not None and not e.crashed:
                return []  # both error: agreement (a crash never is)
            m = Mismatch(expr, None, None, e, d, "error")
            return [] if not e.crashed and known(m, self) else [m]
        out = []
        ef, df = family(e.type), family(d.type)
        if df is not None and ef != df:
            m = Mismatch(expr, None, None, e, d, "type")
            if not known(m, self):
                out.append(m)
        for idx, (ev, dv) in enumerate(zip(e.values, d.values)):
            if not same_value(ev, dv):
                m = Mismatch(expr, idx, self.row(idx), e, d, "value", ev, dv)
                if not known(m, self):
                    out.append(m)
                    break  # the first row is enough to show it
        return out


def _error_text(text: str) -> str:
    """The message without a panic's backtrace (RUST_BACKTRACE may be set)."""
    lines = text.splitlines()
    if "stack backtrace:" in lines:
        lines = lines[: lines.index("stack backtrace:")]
    return "\n".join(lines)[:2000]


_STEP = re.compile(r"steps\[(\d+)\]")


def _failed_step(err: str) -> int | None:
    m = _STEP.search(err)
    return int(m.group(1)) if m else None


def same_value(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        try:
            a, b = float(a), float(b)
        except (TypeError, ValueError):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
        return Decimal(a) == Decimal(b)
    if isinstance(a, datetime) or isinstance(b, datetime):
        return type(a) is type(b) and a == b
    if isinstance(a, date) or isinstance(b, date):
        return type(a) is type(b) and a == b
    return type(a) is type(b) and a == b


def show(v) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, Decimal):
        return f"Decimal('{v}')"
    if isinstance(v, (datetime, date)):
        return v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat()
    return repr(v)


@dataclass
class Mismatch:
    expr: str
    row_idx: int | None
    row: dict | None
    engine: Outcome
    duck: Outcome
    kind: str  # error | type | value
    engine_value: object = None
    duck_value: object = None
    note: str = ""

    def describe(self) -> str:
        lines = [f"expression: {self.expr}", f"  duckdb sql: {to_duckdb(self.expr)}"]
        if self.kind == "error":
            lines.append(f"  engine: {'refused at load: ' if self.engine.refused else ''}"
                         f"{self.engine.error or 'ok, type ' + str(self.engine.type)}")
            lines.append(f"  duckdb: {self.duck.error or 'ok, type ' + str(self.duck.type)}")
            if self.engine.error is None and self.engine.values is not None:
                lines.append(f"  engine values: {[show(v) for v in self.engine.values[:6]]}")
            if self.duck.error is None and self.duck.values is not None:
                lines.append(f"  duckdb values: {[show(v) for v in self.duck.values[:6]]}")
        elif self.kind == "type":
            lines.append(f"  type: engine {self.engine.type}, duckdb {self.duck.type}")
        else:
            used = {k: v for k, v in (self.row or {}).items()
                    if k == "id" or re.search(rf"\b{re.escape(k)}\b", self.expr)}
            lines.append(f"  row: {{{', '.join(f'{k}: {show(v)}' for k, v in used.items())}}}")
            lines.append(f"  engine: {show(self.engine_value)} ({self.engine.type})")
            lines.append(f"  duckdb: {show(self.duck_value)} ({self.duck.type})")
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# KNOWN_DIFFERENCES: the one place naming where the engine deliberately differs from
# DuckDB. Each entry is (name, reason, matcher); a mismatch a matcher accepts is not a
# failure. Matchers are narrow: they accept only the documented direction of difference.
# ---------------------------------------------------------------------------------------
_TEXT_CAST = re.compile(
    r"^\s*(TRY_CAST|CAST)\s*\((?P<arg>.*)\s+AS\s+(?P<ty>bigint|double|decimal\s*\(\s*\d+\s*,\s*\d+\s*\)"
    r"|date|timestamp|boolean)\s*\)\s*$|^(?P<arg2>.*)::(?P<ty2>bigint|double|decimal\(\d+,\d+\)"
    r"|date|timestamp|boolean)$",
    re.IGNORECASE | re.DOTALL,
)


# Text every parser reads alike; the engine refusing one of these is never "stricter".
_PLAIN = {
    "bigint": r"-?\d{1,18}",
    "double": r"-?\d+(\.\d+)?([eE][-+]?\d+)?",
    "decimal": r"-?\d+(\.\d+)?",
    "date": r"\d{4}-\d{2}-\d{2}",
    "timestamp": r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?",
    "boolean": r"true|false",
}


def _plain(text, ty: str) -> bool:
    ty = ty.lower().replace(" ", "")
    if ty.startswith("decimal"):
        p, sc = map(int, re.findall(r"\d+", ty))
        m = re.fullmatch(_PLAIN["decimal"], text or "")
        frac = m.group(1) if m else None
        return bool(m) and len((frac or ".")[1:]) <= sc and len(text.lstrip("-").split(".")[0]) <= p - sc
    return bool(re.fullmatch(_PLAIN[ty], text or ""))


def _is_text_cast(m: Mismatch, s: Session) -> bool:
    """The whole expression is a cast of text whose input the engine's parser refuses."""
    c = _TEXT_CAST.match(m.expr)
    if not c:
        return False
    arg = c.group("arg") or c.group("arg2")
    ty = c.group("ty") or c.group("ty2")
    t = s.duck(arg)
    if family(t.type) != "string":
        return False
    if m.kind == "value":
        # TRY_CAST: the engine's stricter parser gives NULL where DuckDB converts, on text
        # that is not plainly written for the type.
        text = t.values[m.row_idx]
        return m.engine_value is None and m.duck_value is not None and not _plain(text, ty)
    # CAST: the engine fails the run where DuckDB converts.
    return m.kind == "error" and m.engine.error is not None and not m.engine.refused


def _is_hugeint(m: Mismatch, s: Session) -> bool:
    """DuckDB widened to HUGEINT past the bigint range; the engine errors instead."""
    if m.kind != "error" or m.engine.error is None or m.duck.values is None:
        return False
    return family(m.duck.type) == "bigint" and any(
        isinstance(v, int) and not I64_MIN <= v <= I64_MAX for v in m.duck.values
    )


def _is_decimal_narrowing(m: Mismatch, s: Session) -> bool:
    """DuckDB overflowed an 18-digit decimal product the engine holds at p1 + p2 digits.

    Only the direction is accepted here; test_corpus checks such values against DuckDB on
    operands widened to 38 digits."""
    return (
        m.kind == "error"
        and m.engine.error is None
        and "Overflow in multiplication of DECIMAL(18)" in (m.duck.error or "")
    )


KNOWN_DIFFERENCES: list[tuple[str, str, Callable[[Mismatch, Session], bool]]] = [
    (
        "text-cast-parsers",
        "CAST/TRY_CAST of text to bigint, double, decimal, date, timestamp and boolean use the "
        "engine's input parsers (README 'Types'): '1.5' is not a bigint (DuckDB rounds to 2), "
        "'1.234' is not a decimal(4,2) (DuckDB rounds)",
        _is_text_cast,
    ),
    (
        "no-128-bit-integer",
        "the engine has no 128-bit integer: where DuckDB widens past the bigint range "
        "(-(MIN) becomes HUGEINT) the engine reports an overflow error",
        _is_hugeint,
    ),
    (
        "decimal-product-precision",
        "the product of two decimals of precision 18 or less keeps precision p1 + p2 (the SQL "
        "standard's rule) where DuckDB narrows it to 18 digits and can overflow; values and "
        "scale are the same",
        _is_decimal_narrowing,
    ),
]


# How often each known difference excused a mismatch in this process.
KNOWN_HITS: dict[str, list[str]] = {name: [] for name, _, _ in KNOWN_DIFFERENCES}


def known(m: Mismatch, s: Session) -> bool:
    for name, _reason, match in KNOWN_DIFFERENCES:
        if match(m, s):
            m.note = f"known difference {name}"
            KNOWN_HITS[name].append(m.expr)
            return True
    return False


# ---------------------------------------------------------------------------------------
# Findings log for the lead: build/semantics-findings.md, one section per test module.
# ---------------------------------------------------------------------------------------
FINDINGS = REPO / "build" / "semantics-findings.md"


def record_findings(section: str, summary: str, mismatches: list[Mismatch]) -> None:
    FINDINGS.parent.mkdir(parents=True, exist_ok=True)
    text = FINDINGS.read_text(encoding="utf-8") if FINDINGS.exists() else ""
    parts = re.split(r"(?m)^(?=## )", text)
    head = parts[0] if parts and not parts[0].startswith("## ") else ""
    sections = {p.split("\n", 1)[0][3:].strip(): p for p in parts if p.startswith("## ")}
    if not head.strip():
        head = ("# Semantics differential test: mismatches (engine vs DuckDB 2.0)\n\n"
                "Written by tests/semantics on every run; one minimal example per "
                "expression.\n\n")
    try:
        mtime = datetime.utcfromtimestamp(etl_binary().stat().st_mtime).strftime("%H:%M:%S")
    except RuntimeError:
        mtime = "?"
    body = [f"## {section}", "",
            f"Run {datetime.utcnow():%Y-%m-%d %H:%M:%S} UTC, etl binary mtime {mtime} UTC. {summary}",
            ""]
    for m in mismatches:
        body.append("```")
        body.append(m.describe())
        body.append("```")
    body.append("")
    sections[section] = "\n".join(body) + "\n"
    FINDINGS.write_text(head + "".join(sections[k] for k in sorted(sections)), encoding="utf-8")
