"""Whole specs through `etl run --json`, checked against a model computed in DuckDB.

The model reads the raw input file itself and applies README's documented rules in SQL:
typing and its rejects (`invalid_value:`, `missing_required:`, `malformed_record`), every
step in order (a row rejected at a step never reaches the later ones), the quality rules,
and the manifest's counts. Splitting the raw file into records is done here in Python
(`csv`, `json.JSONDecoder.raw_decode`) or in DuckDB (`json_valid`, `json_type`,
`json_extract`); everything after that is SQL over text columns.

Where the engine's documented input parsers are stricter than DuckDB's casts (README
"Types"), the SQL checks the documented shape with a regex before casting; each such
place says so.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from engine import REPO, etl_binary, family, same_value, show, to_duckdb

SEED = int(os.environ.get("SPEC_SEED", "20261202"))
FINDINGS = REPO / "build" / "spec-findings.md"


# ---------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------
@dataclass
class Col:
    name: str
    ty: str  # bigint, double, decimal(p,s), string, boolean, date, timestamp
    required: bool = False
    fmt: str | None = None


@dataclass
class Case:
    name: str
    columns: list[Col]
    null_values: list[str]
    # Each step: (kind, args...) as described in `step_yaml`.
    steps: list[tuple]
    rules: list[dict]
    partition_by: list[str]
    min_score: float | None = None
    references: dict[str, str] = field(default_factory=dict)  # file name -> CSV text
    gen: str = ""  # the generator's name when not the spec's

    def col(self, name: str) -> Col:
        return next(c for c in self.columns if c.name == name)


def _q(s) -> str:
    # A JSON string is a YAML flow scalar; non-ASCII stays as written.
    return json.dumps(s, ensure_ascii=False)


def step_yaml(step: tuple) -> str:
    kind = step[0]
    if kind == "dedup":
        cols = step[1]
        return "deduplicate: {}" if cols is None else f"deduplicate: {{columns: {_q(cols)}}}"
    if kind == "fill":
        return "fill_null: {" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in step[1].items()) + "}"
    if kind == "filter":
        return f"filter: {{name: {_q(step[1])}, where: {_q(step[2])}}}"
    if kind == "sql":
        return f"derive: {{column: {_q(step[1])}, sql: {_q(step[2])}}}"
    if kind == "case":
        whens = ", ".join(f"{{if: {_q(c)}, then: {_q(t)}}}" for c, t in step[2])
        return f"derive: {{column: {_q(step[1])}, case: {{when: [{whens}], else: {_q(step[3])}}}}}"
    if kind == "split":
        _, column, src, sep, idx = step
        return (f"derive: {{column: {_q(column)}, split: {{from: {_q(src)}, "
                f"separator: {_q(sep)}, index: {idx}}}}}")
    if kind == "regex":
        _, column, src, pattern, repl = step
        return (f"derive: {{column: {_q(column)}, regex_replace: {{from: {_q(src)}, "
                f"pattern: {_q(pattern)}, replacement: {_q(repl)}}}}}")
    if kind == "join":
        _, path, on, ref_on, cols, *schema = step
        fields = [f"{{name: {_q(n)}, type: {_q(t)}}}" for n, t in (schema[0] if schema else {}).items()]
        typed = f", schema: [{', '.join(fields)}]" if fields else ""
        return (f"join: {{path: {_q(path)}, on: {_q(on)}, reference_on: {_q(ref_on)}, "
                f"columns: {_q(cols)}{typed}}}")
    if kind == "cast":
        return f"cast: {{column: {_q(step[1])}, to: {_q(step[2])}}}"
    if kind == "processed_at":
        return f"processed_at: {{column: {_q(step[1])}}}"
    raise ValueError(kind)


def spec_yaml(case: Case) -> str:
    out = [
        f"name: {case.name}",
        f"source: {{prefix: {case.name}/, format: auto, null_values: {_q(case.null_values)}}}",
        "schema:",
    ]
    for c in case.columns:
        extra = (", required: true" if c.required else "") + (
            f", format: {_q(c.fmt)}" if c.fmt else "")
        out.append(f"  - {{name: {_q(c.name)}, type: {_q(c.ty)}{extra}}}")
    out.append("steps:")
    out += [f"  - {step_yaml(s)}" for s in case.steps]
    out.append("quality:")
    if case.min_score is not None:
        out.append(f"  min_score: {case.min_score}")
    out.append("  rules:")
    for r in case.rules:
        out.append("    - {" + ", ".join(f"{k}: {_q(v)}" for k, v in r.items()) + "}")
    out.append(f"output: {{partition_by: {_q(case.partition_by)}}}")
    return "\n".join(out) + "\n"


COUNTRIES_CSV = (
    "iso,region,label\n"
    "US,Americas,United States\n"
    "DE,Europe,Deutschland\n"
    "FR,Europe,\"France, République\"\n"
    "JP,Asia,日本\n"
    "ES,Europe,España\n"
)

ORDERS = Case(
    name="orders",
    columns=[
        Col("id", "bigint", required=True),
        Col("name", "string"),
        Col("email", "string"),
        Col("country", "string"),
        Col("amount", "decimal(10,2)"),
        Col("qty", "bigint"),
        Col("score", "double"),
        Col("active", "boolean"),
        Col("signup", "date", fmt="%d/%m/%Y"),
        Col("birth", "date"),
        Col("updated", "timestamp"),
        Col("code", "string"),
        Col("geo.city", "string"),
    ],
    null_values=["NA", "N/A", "NULL"],
    steps=[
        ("dedup", None),
        ("fill", {"name": "anonymous", "qty": 0, "birth": "1970-01-01", "active": False,
                  "amount": 0, "score": 0.5, "updated": "2000-01-01 00:00:00"}),
        ("filter", "non_negative_qty", "qty >= 0"),
        ("sql", "total", "amount * qty"),
        ("sql", "label", "upper(name) || '-' || CAST(id AS varchar)"),
        ("case", "segment", [("score > 80", "High"), ("score > 40", "Medium")], "Low"),
        ("split", "domain", "email", "@", 1),
        ("regex", "clean_name", "name", "[^A-Za-z0-9 ]", ""),
        ("join", "countries.csv", "country", "iso", ["region"]),
        ("cast", "code", "bigint"),
        ("filter", "born_after_1900", "birth >= '1900-01-01'"),
        ("processed_at", "processed_at"),
    ],
    rules=[
        {"rule": "IsComplete", "column": "email"},
        {"rule": "ColumnValues", "column": "email", "matches": r"[^@ ]+@[^@ ]+\.[a-z]+"},
        {"rule": "ColumnValues", "column": "country", "in": ["US", "DE", "FR", "JP", "ES"],
         "action": "quarantine"},
        {"rule": "ColumnValues", "column": "score", "between": [0, 100], "action": "alert"},
        {"rule": "ColumnValues", "column": "amount", "between": [0, 50000], "action": "fail",
         "threshold": 0.3},
        {"rule": "Completeness", "column": "geo.city", "threshold": 0.9},
        {"rule": "Uniqueness", "column": "email", "threshold": 0.5},
        {"rule": "IsUnique", "column": "id"},
        {"rule": "ColumnExists", "column": "region"},
        {"rule": "ColumnExists", "column": "no_such_column", "action": "alert"},
        {"rule": "RowCount", "min": 1, "action": "fail"},
        {"rule": "DataFreshness", "column": "updated", "max_age": "30d", "threshold": 0.5},
    ],
    partition_by=["country"],
    min_score=0.5,
    references={"countries.csv": COUNTRIES_CSV},
)

EVENTS = Case(
    name="events",
    columns=[
        Col("event_id", "bigint", required=True),
        Col("user", "string", required=True),
        Col("kind", "string"),
        Col("at", "timestamp", required=True, fmt="%d/%m/%Y %H:%M"),
        Col("ok", "boolean", required=True),
        Col("value", "double"),
        Col("price", "decimal(6,3)"),
    ],
    null_values=["-"],
    steps=[
        ("filter", "known_kind", "kind IN ('click', 'view', 'buy')"),
        ("dedup", ["event_id"]),
        ("sql", "day", "CAST(\"at\" AS date)"),
        ("sql", "hour", "date_part('hour', \"at\")"),
        ("sql", "cost", "price * 2 + value"),
        ("cast", "value", "bigint"),
        ("sql", "tag", "CASE WHEN ok THEN 'ok' ELSE 'ko' END || '/' || kind"),
    ],
    rules=[
        {"rule": "ColumnValues", "column": "user", "matches": "u[0-9]+", "action": "quarantine"},
        {"rule": "IsComplete", "column": "value", "action": "alert"},
        {"rule": "Completeness", "column": "price", "threshold": 0.8, "action": "fail"},
        {"rule": "RowCount", "min": 1, "action": "fail"},
    ],
    partition_by=["kind"],
)


TIERS = ["bronze", "sílver", '"gold, plus"', "金"]  # as CSV fields

# Expressions over the orders data: text functions on Unicode, division and modulo, casts
# to text, dates, LIKE/ILIKE, NaN in a CASE. Only names DuckDB spells otherwise are
# translated (engine.to_duckdb).
EXPRS = Case(
    name="exprs",
    gen="orders",
    columns=ORDERS.columns,
    null_values=ORDERS.null_values,
    steps=[
        ("dedup", ["id"]),
        ("filter", "not_user1x", "coalesce(email, '') NOT LIKE 'user1_@%'"),
        ("filter", "no_bob", "name IS NULL OR name NOT ILIKE '%BOB%'"),
        ("sql", "ratio", "amount / qty"),
        ("sql", "qmod", "(qty - id) % id"),
        ("sql", "amod", "amount % 2.50"),
        ("sql", "name_len", "length(name)"),
        ("sql", "low", "lower(name) || upper(name)"),
        ("sql", "trimmed", "trim(name) || '|' || ltrim(name) || '|' || rtrim(name)"),
        ("sql", "rep", "replace(name, ' ', '_')"),
        ("sql", "cc", "concat(name, NULL, email, \"geo.city\")"),
        ("sql", "txt", "CAST(score AS varchar) || '|' || CAST(amount AS varchar) || '|' || "
                       "CAST(updated AS varchar) || '|' || CAST(birth AS varchar) || '|' || "
                       "CAST(active AS varchar) || '|' || CAST(ratio AS varchar)"),
        ("sql", "ym", "date_part('year', birth) * 100.0 + EXTRACT(month FROM birth)"),
        ("sql", "sec", "date_part('second', updated) + date_part('hour', birth)"),
        ("sql", "nn", "nullif(country, 'XX')"),
        ("sql", "okc", "CASE WHEN regexp_like(coalesce(code, ''), '^-?[0-9]{1,9}$') "
                       "THEN CAST(code AS bigint) END"),
        ("sql", "day_ts", "CAST(signup AS timestamp) < TIMESTAMP '2022-01-01 01:00:00+02:00'"),
        ("case", "band", [("ratio > 1000", "big"), ("ratio IS NULL", "none")], "small"),
        ("join", "tiers.csv", "qty", "n", ["tier", "weight"], {"n": "bigint", "weight": "double"}),
        ("sql", "bstr", "CAST(birth AS varchar)"),
        ("cast", "bstr", "date"),
        ("cast", "code", "decimal(6,1)"),
        ("cast", "active", "bigint"),
        ("dedup", None),
    ],
    rules=[
        {"rule": "ColumnValues", "column": "qmod", "between": [-1000, 0], "action": "alert"},
        {"rule": "ColumnValues", "column": "band", "in": ["big", "small"], "action": "quarantine"},
        {"rule": "Uniqueness", "column": "low", "threshold": 0.1},
        {"rule": "ColumnValues", "column": "qty", "matches": "[0-9]", "action": "alert"},
        {"rule": "ColumnValues", "column": "qty", "in": ["1", "2", "3"], "action": "alert"},
        {"rule": "DataFreshness", "column": "signup", "max_age": "1400d", "threshold": 0.2},
        {"rule": "DataFreshness", "column": "updated", "max_age": "72h"},
    ],
    partition_by=["active"],
    references={"tiers.csv": "n,tier,weight,unused\n" + "".join(
        f"{n},{TIERS[n % 4]},{'' if n % 9 == 0 else n * 0.25},x\n" for n in range(0, 50, 2))},
)


# Integer literals in arithmetic and as function arguments, apart from EXPRS so that a spec
# refused at load does not hide what EXPRS finds.
LITERALS = Case(
    name="literals",
    gen="orders",
    columns=ORDERS.columns,
    null_values=ORDERS.null_values,
    steps=[
        ("sql", "l1", "(qty - 20) % 7"),
        ("sql", "l2", "amount * 2 + 1"),
        ("sql", "l3", "substr(name, -3) || '|' || substr(name, 0, 3) || '|' || substr(name, 2, -1)"),
        ("sql", "l4", "date_part('year', birth) * 100 + EXTRACT(month FROM birth)"),
        ("sql", "l5", "qty IN (13, NULL)"),
        ("sql", "l6", "abs(qty - 30)"),
        ("sql", "l9", "coalesce(qty, -1)"),
        ("filter", "l7", "qty % 5 <> 0 OR qty IS NULL"),
        ("sql", "l8", "CAST(qty AS double) / 0"),
    ],
    rules=[],
    partition_by=[],
)


# A CAST in an expression that meets text it cannot convert: the run stops (exit 4) naming
# the file, the line, the step and the value (README "Casts").
CAST_FAILS = Case(
    name="castfail",
    gen="orders",
    columns=ORDERS.columns,
    null_values=ORDERS.null_values,
    steps=[
        ("dedup", None),
        ("filter", "has_email", "email IS NOT NULL"),
        ("sql", "n", "CAST(code AS bigint) + id"),
    ],
    rules=[],
    partition_by=[],
)


def failing_variant(case: Case) -> Case:
    """The same spec with a `fail` rule that cannot pass on the generated input."""
    return Case(case.name, case.columns, case.null_values, case.steps,
                case.rules + [{"rule": "RowCount", "max": 5, "action": "fail"}],
                case.partition_by, case.min_score, case.references)


# ---------------------------------------------------------------------------------------
# Generated dirty inputs. A record is a dict column -> value, where a value is None (no
# value: an empty field, a JSON null or a missing key), or text. Values are text in every
# format; JSON writers may write clean numbers and booleans as JSON tokens.
# ---------------------------------------------------------------------------------------
NAMES = ["Alice Martin", "Bob", "Zoë Ølsen", "Straße Weg", "東京 太郎", "Emoji 🎉 Fan",
         "Smith, \"Jr\"", "Multi\nLine", "e\u0301cole", "O'Brien", "İlker", "  padded  ",
         "ﬁnn", "Tab\there", "plain"]
CITIES = ["Berlin", "Zürich", "São Paulo", "東京", "Paris", "Köln, Ost", None]
DOMAINS = ["example.com", "mail.de", "ex.jp", "bad", "x.y.fr"]


class Gen:
    def __init__(self, seed: int, now: datetime):
        self.r = random.Random(seed)
        self.now = now

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def null(self):
        # An empty field or JSON null, or one of the spec's NULL markers.
        return self.r.choice([None, None, "NA", "N/A", "NULL"])

    def ts_text(self, t: datetime) -> str:
        form = self.r.randrange(5)
        if form == 0:
            return t.strftime("%Y-%m-%d %H:%M:%S")
        if form == 1:
            frac = f"{self.r.randrange(1, 1000000):06d}".rstrip("0")
            return t.strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"
        if form == 2:
            local = t + timedelta(hours=2)
            return local.strftime("%Y-%m-%dT%H:%M:%S") + "+02:00"
        if form == 3:
            return t.strftime("%Y-%m-%d")
        return t.strftime("%Y-%m-%dT%H:%M:%S")

    def orders_row(self, i: int) -> dict:
        r = self.r
        row = {
            "id": str(1000 + i),
            "name": r.choice(NAMES),
            "email": f"user{r.randrange(60)}@{r.choice(DOMAINS)}",
            "country": r.choice(["US", "DE", "FR", "JP", "ES", "XX", None]),
            "amount": f"{r.randrange(0, 99999)}.{r.randrange(100):02d}",
            "qty": str(r.randrange(-3, 50)),
            "score": repr(round(r.uniform(-5, 120), r.randrange(4))),
            "active": r.choice(["true", "false", "yes", "no", "Y", "n", "1", "0", "TRUE", " t "]),
            "signup": (datetime(2020, 1, 1) + timedelta(days=r.randrange(1500))).strftime("%d/%m/%Y"),
            "birth": (datetime(1880, 1, 1) + timedelta(days=r.randrange(48000))).strftime("%Y-%m-%d"),
            "updated": self.ts_text(
                self.now - (timedelta(minutes=r.randrange(60, 5 * 1440)) if self.chance(0.6)
                            else timedelta(days=r.randrange(60, 400), minutes=r.randrange(1440)))),
            "code": str(r.randrange(1000)),
            "geo.city": r.choice(CITIES),
        }
        # Clean variations the parsers must accept.
        if self.chance(0.05):
            row["id"] = f" {row['id']} " if self.chance(0.7) else f"+{row['id']}"
        if self.chance(0.1):
            row["amount"] = r.choice(["12", "-3.1", "0.5", "7.", ".25", "+4.00", "1.50", "-.5",
                                      "00012.50", " 1.5 ", "-0"])
        if self.chance(0.05):
            row["score"] = r.choice(["1e2", " 3.5 ", "-0.25", "+7", ".5", "1.", "+.5", "1E1",
                                     "2.5e-3"])
        if self.chance(0.05):
            row["birth"] = r.choice(["1985-06-15T10:00:00Z", "1985-06-15T23:30:00-02:00",
                                     "1969-12-31 23:59:59", "2024-02-29", " 1999-12-31 "])
        if self.chance(0.03):
            row["signup"] = r.choice(["5/3/2024", "1/12/2021", " 05/03/2024 "])
        if self.chance(0.03):
            row["active"] = r.choice(["T", "FALSE", "Yes", "no "])
        if self.chance(0.05):
            row["code"] = r.choice([" 7 ", "-12", "A12", "1.0", "", "99999999999999999999"])
        if self.chance(0.03):
            row["qty"] = "9223372036854775807" if self.chance(0.3) else " 42 "
        if self.chance(0.02):
            row["amount"], row["qty"] = "0.00", "0"  # 0 / 0 is NaN
        if self.chance(0.03):
            # Before 1970 with a fraction: negative microseconds.
            row["updated"] = r.choice(["1969-12-31T23:59:59.999999Z", "1900-01-01 00:00:00.5",
                                       "1969-07-20T20:17:40-05:00"])
        # Defects: invalid values, NULL markers, missing required values.
        defects = {
            "id": ["abc", "1.5", "", "NA", "9223372036854775808"],
            "email": ["no-at-sign", "x@y", "a@b@c.com", None, "NA"],
            "amount": ["12.345", "abc", "123456789.00", "1,5", "-", ".", "1e2", "  "],
            "qty": ["2.5", "x", "9223372036854775808", "  ", "1_000", "0x10"],
            "score": ["NaN", "inf", "1,5", "1e400", "abc", "Infinity", "  "],
            "active": ["maybe", "2", "tru", "on"],
            "signup": ["2024-01-05", "31/02/2024", "00/01/2024", "05/03/2024x"],
            "birth": ["2023-02-29", "15/06/1985", "yesterday", "1985-13-01", "1900-02-29"],
            "updated": ["2024-13-01 00:00:00", "now", "2024-01-01 25:00:00", "2024-02-30",
                        "2024-03-01 10:00", "2024-03-01T10:00:00+0200"],
        }
        for c, bad in defects.items():
            if self.chance(0.02):
                row[c] = r.choice(bad)
        if self.chance(0.02):
            row["id"] = self.null()  # a required value missing
        for c in ["name", "email", "country", "amount", "qty", "score", "active", "birth",
                  "updated", "geo.city", "code"]:
            if self.chance(0.04):
                row[c] = self.null()
        return row

    def events_row(self, i: int) -> dict:
        r = self.r
        at = datetime(2024, 3, 1) + timedelta(minutes=r.randrange(60 * 24 * 20))
        row = {
            "event_id": str(r.randrange(1, 600)),
            "user": f"u{r.randrange(50)}" if self.chance(0.85) else r.choice(["U7", "guest", "ü1"]),
            "kind": r.choice(["click", "view", "buy"] * 4 + ["scroll", "Click", None]),
            "at": at.strftime("%d/%m/%Y %H:%M"),
            "ok": r.choice(["true", "false", "t", "f", "yes", "no"]),
            "value": r.choice([repr(round(r.uniform(-100, 100), 1)), "2.5", "-2.5", "3.5", "0.5",
                               str(r.randrange(100))] * 4 + ["1e300", "-1e19"]),
            "price": f"{r.randrange(999)}.{r.randrange(1000):03d}",
        }
        defects = {
            "event_id": ["", "-", "x1", "1e3"],
            "user": ["", "-", None],
            "at": ["2024-03-05 10:00", "31/04/2024 10:00", "05/03/2024 25:00", "", "-"],
            "ok": ["", "maybe", None],
            "value": ["1,5", "abc"],
            "price": ["1.2345", "1000.000", "x"],
        }
        for c, bad in defects.items():
            if self.chance(0.03):
                row[c] = r.choice(bad)
        for c in ["value", "price", "kind"]:
            if self.chance(0.05):
                row[c] = r.choice([None, "-"])
        for c in ["event_id", "user", "at", "ok"]:
            if self.chance(0.015):
                row[c] = r.choice([None, "-", ""])  # a required value missing
        return row


def generate(case: Case, seed: int, n: int, now: datetime) -> list[dict]:
    """n records with duplicates: exact copies, and copies equal once typed."""
    g = Gen(seed, now)
    make = g.orders_row if (case.gen or case.name) == "orders" else g.events_row
    rows: list[dict] = []
    for i in range(n):
        if rows and g.chance(0.08):
            rows.append(dict(g.r.choice(rows)))
            continue
        if rows and g.chance(0.03):
            # The same values, written differently: equal after typing.
            row = dict(g.r.choice(rows))
            for k, v in row.items():
                if v and re.fullmatch(r"-?\d+(\.\d+)?", v) and case.col(k).ty != "string":
                    row[k] = f" {v} "
            rows.append(row)
            continue
        rows.append(make(i))
    return rows


# ---- writers -------------------------------------------------------------------------
def csv_field(v: str | None, r: random.Random, delim: str = ",") -> str:
    if v is None:
        return ""
    if any(c in v for c in delim + '"\n\r') or r.random() < 0.1:
        return '"' + v.replace('"', '""') + '"'
    return v


def write_csv(case: Case, rows: list[dict], seed: int, delim: str = ",", eol: str = "\n") -> str:
    r = random.Random(seed + 1)
    header = [c.name for c in case.columns] + ["note"]  # `note` is not in the schema
    r.shuffle(header)
    lines = [delim.join(header)]
    for row in rows:
        fields = [csv_field(row.get(h) if h != "note" else r.choice(["n", "x, y", None]), r, delim)
                  for h in header]
        if r.random() < 0.025:
            # A ragged row: one field short or one too many.
            fields = fields[:-1] if r.random() < 0.5 else fields + ["extra"]
        lines.append(delim.join(fields))
    return eol.join(lines) + eol


def write_tsv(case: Case, rows: list[dict], seed: int) -> str:
    return write_csv(case, rows, seed, delim="\t")


def write_csv_crlf(case: Case, rows: list[dict], seed: int) -> str:
    return write_csv(case, rows, seed, eol="\r\n")


def json_token(col: Col, v: str | None, r: random.Random) -> str | None:
    """The JSON text of a value; None leaves the key out."""
    if v is None:
        return None if r.random() < 0.5 else "null"
    ty = col.ty
    whole = r"-?(0|[1-9]\d*)"  # JSON's grammar: no leading zeros, no '+'
    if ty == "bigint" and re.fullmatch(whole, v) and r.random() < 0.7:
        return v
    if (ty == "double" and re.fullmatch(whole + r"(\.\d+)?([eE][+-]?\d+)?", v)
            and abs(float(v)) < 1e300 and r.random() < 0.7):
        # Not past the double range: serde_json refuses such a number, DuckDB reads inf.
        return v
    if ty.startswith("decimal") and re.fullmatch(whole + r"\.\d\d?", v) and r.random() < 0.5:
        return v
    if ty == "boolean" and v in ("true", "false") and r.random() < 0.7:
        return v
    if r.random() < 0.02:
        # A JSON value of another kind than the column's.
        return r.choice(["true", "[1,2]", "42", "12.0", '{"k":1}'])
    # Now and then with \u escapes (surrogate pairs for emoji).
    return json.dumps(v, ensure_ascii=r.random() < 0.2)


def json_object(case: Case, row: dict, r: random.Random) -> str:
    parts, nested = [], []
    for c in case.columns:
        tok = json_token(c, row.get(c.name), r)
        if tok is None:
            continue
        if "." in c.name:
            parent, child = c.name.split(".", 1)
            shape = r.random()
            if shape < 0.1:
                parts.append(f"{json.dumps(c.name)}: {tok}")  # the dotted name as a key
            elif shape < 0.15:
                parts.append(f"{json.dumps(parent)}: {json.dumps(child)}")  # not an object
            else:
                nested.append((parent, f"{json.dumps(child)}: {tok}"))
        else:
            parts.append(f"{json.dumps(c.name)}: {tok}")
    if r.random() < 0.2:
        parts.append('"extra_key": [1, {"a": 2}]')
    for parent, inner in nested:
        parts.append(f"{json.dumps(parent)}: {{{inner}}}")
    return "{" + ", ".join(parts) + "}"


def write_ndjson(case: Case, rows: list[dict], seed: int) -> str:
    r = random.Random(seed + 2)
    lines = []
    for row in rows:
        if r.random() < 0.02:
            lines.append(r.choice(['{"id": 7, "name": "trunc', "[1, 2]", '"just text"',
                                   '{"id": }', "42"]))
        lines.append(json_object(case, row, r))
    return "\n".join(lines) + "\n"


def json_elements(case: Case, rows: list[dict], seed: int) -> list[str]:
    r = random.Random(seed + 3)
    elems = []
    for row in rows:
        # Not first: `format: auto` tells a stream of objects by its first `{`.
        if r.random() < 0.03 and elems:
            elems.append(r.choice(["42", '"text"', "[1, 2]", "true"]))
        obj = json_object(case, row, r)
        if r.random() < 0.05:
            # The same object spread over several lines.
            obj = json.dumps(json.loads(obj), indent=2, ensure_ascii=False)
        elems.append(obj)
    return elems


def write_json_array(case: Case, rows: list[dict], seed: int) -> str:
    return "[\n" + ",\n".join(json_elements(case, rows, seed)) + "\n]\n"


def write_json_concat(case: Case, rows: list[dict], seed: int) -> str:
    """Values one after another without an array, some over several lines."""
    return "\n".join(json_elements(case, rows, seed)) + "\n"


# ---------------------------------------------------------------------------------------
# Splitting the raw file into records: (line, raw text, fields or None if malformed)
# ---------------------------------------------------------------------------------------
@dataclass
class RawInput:
    fmt: str  # csv | ndjson | json
    # CSV: (line, raw, [field texts] or None); JSON: (line, element text)
    records: list
    header: list[str] | None = None


def split_csv(text: str, delim: str = ",") -> RawInput:
    lines = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True, delimiter=delim)
    header = [h.strip() for h in next(reader)]
    records = []
    prev = reader.line_num
    for fields in reader:
        start, end = prev + 1, reader.line_num
        prev = end
        # The record as it stands in the file, without its line terminator.
        raw = "\n".join(lines[start - 1:end]).removesuffix("\r")
        records.append((start, raw, fields if len(fields) == len(header) else None))
    return RawInput("csv", records, header)


def split_ndjson(text: str) -> RawInput:
    records = []
    for i, line in enumerate(text.split("\n"), start=1):
        t = line.strip(" \t\r\n")
        if t:
            records.append((i, t))
    return RawInput("ndjson", records)


def split_tsv(text: str) -> RawInput:
    return split_csv(text, "\t")


def split_json_array(text: str, array: bool = True) -> RawInput:
    dec = json.JSONDecoder()
    pos = text.index("[") + 1 if array else 0
    records = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n" + ("," if array else ""):
            pos += 1
        if pos == len(text) or (array and text[pos] == "]"):
            break
        _, end = dec.raw_decode(text, pos)
        records.append((text.count("\n", 0, pos) + 1, text[pos:end]))
        pos = end
    return RawInput("json", records)


def split_json_concat(text: str) -> RawInput:
    return split_json_array(text, array=False)


# ---------------------------------------------------------------------------------------
# The model, in DuckDB
# ---------------------------------------------------------------------------------------
def duck_type(ty: str) -> str:
    return {"bigint": "BIGINT", "double": "DOUBLE", "string": "VARCHAR", "boolean": "BOOLEAN",
            "date": "DATE", "timestamp": "TIMESTAMP"}.get(ty) or ty.upper()


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# Shapes the engine's parsers accept (README "Types"; DuckDB's casts accept more).
INT_RE = r"[+-]?[0-9]+"
DBL_RE = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
DATE_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
TS_NAIVE_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
TS_RFC_RE = TS_NAIVE_RE + r"(Z|[+-][0-9]{2}:[0-9]{2})"
FMT_RE = {"%d/%m/%Y": r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}",
          "%d/%m/%Y %H:%M": r"[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}"}


def ts_of_text(x: str) -> str:
    """A timestamp (UTC) from trimmed text x without a format, or NULL."""
    return (f"CASE WHEN regexp_full_match({x}, '{TS_RFC_RE}') "
            f"THEN CAST(TRY_CAST({x} AS TIMESTAMPTZ) AS TIMESTAMP) "
            f"WHEN regexp_full_match({x}, '{TS_NAIVE_RE}') THEN TRY_CAST({x} AS TIMESTAMP) "
            f"WHEN regexp_full_match({x}, '{DATE_RE}') THEN CAST(TRY_CAST({x} AS DATE) AS TIMESTAMP) "
            f"END")


def typed_of_text(col: Col, s: str) -> str:
    """SQL for the typed value of text s (already known non-null), NULL if it does not parse."""
    x = f"trim({s}, ' ')"
    ty = col.ty
    if ty == "string":
        return s
    if ty == "bigint":
        # Digits with an optional sign (DuckDB would also round '1.5').
        return f"CASE WHEN regexp_full_match({x}, '{INT_RE}') THEN TRY_CAST({x} AS BIGINT) END"
    if ty == "double":
        # Rust's f64 grammar; NaN, inf and values overflowing to inf are refused.
        return (f"CASE WHEN regexp_full_match({x}, '{DBL_RE}') AND "
                f"isfinite(TRY_CAST({x} AS DOUBLE)) THEN TRY_CAST({x} AS DOUBLE) END")
    if ty.startswith("decimal"):
        p, sc = map(int, re.findall(r"\d+", ty))
        # Never rounded: at most `sc` places after trailing zeros are dropped, and at most
        # p - sc integer digits after leading zeros are dropped (DuckDB would round).
        ip = f"ltrim(regexp_extract({x}, '^[+-]?([0-9]*)', 1), '0')"
        fp = f"rtrim(regexp_extract({x}, '\\.([0-9]*)$', 1), '0')"
        return (f"CASE WHEN regexp_full_match({x}, '[+-]?[0-9]*(\\.[0-9]*)?') "
                f"AND regexp_matches({x}, '[0-9]') AND length({fp}) <= {sc} "
                f"AND length({ip}) + {sc} <= {p} THEN TRY_CAST({x} AS {duck_type(ty)}) END")
    if ty == "boolean":
        lx = f"lower({x})"
        return (f"CASE WHEN {lx} IN ('true','t','yes','y','1') THEN true "
                f"WHEN {lx} IN ('false','f','no','n','0') THEN false END")
    if ty == "date":
        if col.fmt:
            return (f"CASE WHEN regexp_full_match({x}, '{FMT_RE[col.fmt]}') "
                    f"THEN CAST(try_strptime({x}, {lit(col.fmt)}) AS DATE) END")
        # YYYY-MM-DD, or a timestamp's UTC date.
        return f"CAST(({ts_of_text(x)}) AS DATE)"
    if ty == "timestamp":
        if col.fmt:
            return (f"CASE WHEN regexp_full_match({x}, '{FMT_RE[col.fmt]}') "
                    f"THEN try_strptime({x}, {lit(col.fmt)}) END")
        return ts_of_text(x)
    raise ValueError(ty)


def typed_of_json(col: Col, k: str, t: str) -> str:
    """SQL for the typed value of a JSON scalar of kind k (not VARCHAR) with JSON text t."""
    ty = col.ty
    num = f"{k} IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
    if ty == "string":
        return t  # the value's JSON text
    if ty == "bigint":
        return f"CASE WHEN {k} IN ('BIGINT', 'UBIGINT') THEN TRY_CAST({t} AS BIGINT) END"
    if ty == "double":
        return f"CASE WHEN {num} THEN TRY_CAST({t} AS DOUBLE) END"
    if ty.startswith("decimal"):
        # A JSON number is read as a double and parsed from its shortest text.
        return f"CASE WHEN {num} THEN {typed_of_text(col, t)} END"
    if ty == "boolean":
        return f"CASE WHEN {k} = 'BOOLEAN' THEN {t} = 'true' END"
    return "NULL"


def partition_text(v) -> str:
    if v is None:
        return "__HIVE_DEFAULT_PARTITION__"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass
class Expected:
    counts: dict
    rules: list[dict]
    status: str
    score: float
    columns: dict[str, str]  # output column -> DuckDB type
    partitions: dict[str, list[tuple]]  # partition path -> rows in input order
    quarantine: list[tuple]  # (line, code) sorted
    quarantine_text: dict[int, dict]  # line -> {column: text, '_raw': text}


class Model:
    def __init__(self, case: Case, raw: RawInput, refdir: Path, now: datetime):
        self.case = case
        self.raw = raw
        self.now = now
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone='UTC'")
        self.refdir = refdir
        self.q: list[tuple[int, str]] = []
        self.duplicates = 0

    def close(self):
        self.con.close()

    def sql(self, s: str, params=None):
        return self.con.execute(s, params or [])

    def load_records(self):
        """Table rec(line, raw, malformed, k_i, t_i): kind and text of each schema field."""
        n = len(self.case.columns)
        ks = ", ".join(f"k{i} VARCHAR, t{i} VARCHAR" for i in range(n))
        self.sql(f"CREATE TABLE rec(line BIGINT, raw VARCHAR, malformed BOOLEAN, {ks})")
        if self.raw.fmt == "csv":
            pos = {h: j for j, h in enumerate(self.raw.header)}
            rows = []
            for line, raw, fields in self.raw.records:
                vals = [line, raw, fields is None]
                for c in self.case.columns:
                    j = pos.get(c.name)
                    present = fields is not None and j is not None
                    vals += ["VARCHAR" if present else None, fields[j] if present else None]
                rows.append(vals)
            marks = ", ".join("?" for _ in range(3 + 2 * n))
            if rows:
                self.con.executemany(f"INSERT INTO rec VALUES ({marks})", rows)
            self.found_columns = list(self.raw.header)
            return
        self.sql("CREATE TABLE src(line BIGINT, raw VARCHAR)")
        if self.raw.records:
            self.con.executemany("INSERT INTO src VALUES (?, ?)", self.raw.records)
        sel = []
        for i, c in enumerate(self.case.columns):
            # An exact key first, then the nested path for `parent.child` names.
            exact = lit("$." + json.dumps(c.name))
            nested = lit("$." + ".".join(json.dumps(p) for p in c.name.split(".")))
            path = (f"CASE WHEN json_type(j, {exact}) IS NOT NULL THEN {exact} ELSE {nested} END"
                    if "." in c.name else exact)
            sel.append(f"json_type(j, {path}) AS k{i}")
            sel.append(f"CASE WHEN json_type(j, {path}) = 'VARCHAR' THEN json_extract_string(j, {path}) "
                       f"ELSE CAST(json_extract(j, {path}) AS VARCHAR) END AS t{i}")
        self.sql(f"""
            INSERT INTO rec
            SELECT line, raw, NOT ok, {", ".join(f"CASE WHEN ok THEN k{i} END, CASE WHEN ok THEN t{i} END"
                                               for i in range(n))}
            FROM (SELECT line, raw, ok, {", ".join(sel)}
                  FROM (SELECT line, raw,
                               coalesce(CASE WHEN json_valid(raw) THEN json_type(raw) END = 'OBJECT',
                                        false) AS ok,
                               CASE WHEN json_valid(raw) THEN raw END::JSON AS j FROM src))
        """)
        keys = set()
        objects = self.sql("SELECT raw FROM src WHERE CASE WHEN json_valid(raw) "
                           "THEN json_type(raw) = 'OBJECT' END").fetchall()
        for (r,) in objects:
            def walk(o, prefix):
                for key, v in o.items():
                    keys.add(prefix + key)
                    if isinstance(v, dict):
                        walk(v, prefix + key + ".")
            walk(json.loads(r), "")
        self.found_columns = sorted(keys)

    def type_records(self):
        """Typing: the first field (schema order) that is missing or does not parse."""
        nulls = ", ".join(lit(v) for v in self.case.null_values) or "NULL"
        checks, values = [], []
        for i, c in enumerate(self.case.columns):
            k, t = f"k{i}", f"t{i}"
            is_null = f"({k} IS NULL OR {k} = 'NULL' OR ({k} = 'VARCHAR' AND ({t} = '' OR {t} IN ({nulls}))))"
            typed = (f"CASE WHEN {is_null} THEN NULL WHEN {k} = 'VARCHAR' THEN "
                     f"{typed_of_text(c, t)} ELSE {typed_of_json(c, k, t)} END")
            values.append(f"CAST({typed} AS {duck_type(c.ty)}) AS {ident(c.name)}")
            fail = (f"CASE WHEN {is_null} THEN "
                    + (f"'missing_required:{c.name}'" if c.required else "NULL")
                    + f" WHEN ({typed}) IS NULL THEN 'invalid_value:{c.name}' END")
            checks.append(fail)
        self.sql(f"""CREATE TABLE typed AS SELECT line AS __line, coalesce({", ".join(checks)}) AS __code,
                     {", ".join(values)} FROM rec WHERE NOT malformed""")
        self.q += self.sql("SELECT line, 'malformed_record' FROM rec WHERE malformed").fetchall()
        self.q += self.sql("SELECT __line, __code FROM typed WHERE __code IS NOT NULL").fetchall()
        self.sql("CREATE TABLE cur AS SELECT * EXCLUDE (__code) FROM typed WHERE __code IS NULL")
        self.rows_in = self.sql("SELECT count(*) FROM rec").fetchone()[0]

    def columns(self) -> list[str]:
        return [r[0] for r in self.sql("DESCRIBE cur").fetchall() if r[0] != "__line"]

    def replace_cur(self, select: str):
        self.sql(f"CREATE OR REPLACE TABLE nxt AS {select}")
        self.sql("DROP TABLE cur")
        self.sql("ALTER TABLE nxt RENAME TO cur")

    def with_column(self, name: str, expr: str):
        if name in self.columns():
            self.replace_cur(f"SELECT * REPLACE (({expr}) AS {ident(name)}) FROM cur")
        else:
            self.replace_cur(f"SELECT *, ({expr}) AS {ident(name)} FROM cur")

    def reject(self, keep: str, code: str):
        """Rows where `keep` is not true go to quarantine as `code`."""
        self.q += self.sql(f"SELECT __line, {lit(code)} FROM cur "
                           f"WHERE NOT coalesce(({keep}), false)").fetchall()
        self.replace_cur(f"SELECT * FROM cur WHERE coalesce(({keep}), false)")

    def step(self, s: tuple, processed_at: datetime | None):
        kind = s[0]
        if kind == "dedup":
            cols = s[1] or self.columns()
            before = self.sql("SELECT count(*) FROM cur").fetchone()[0]
            # PARTITION BY groups NULLs together, as the engine's fingerprints do.
            self.replace_cur(f"""SELECT * EXCLUDE (__rn) FROM (SELECT *, row_number() OVER (
                PARTITION BY {", ".join(ident(c) for c in cols)} ORDER BY __line) AS __rn FROM cur)
                WHERE __rn = 1""")
            self.duplicates += before - self.sql("SELECT count(*) FROM cur").fetchone()[0]
        elif kind == "fill":
            types = {r[0]: r[1] for r in self.sql("DESCRIBE cur").fetchall()}
            for name, v in s[1].items():
                val = ("true" if v else "false") if isinstance(v, bool) else (
                    str(v) if isinstance(v, (int, float)) else lit(v))
                self.with_column(name, f"coalesce({ident(name)}, CAST({val} AS {types[name]}))")
        elif kind == "filter":
            self.reject(to_duckdb(s[2]), f"filter:{s[1]}")
        elif kind == "sql":
            self.with_column(s[1], to_duckdb(s[2]))
        elif kind == "case":
            whens = " ".join(f"WHEN {to_duckdb(c)} THEN {lit(t)}" for c, t in s[2])
            self.with_column(s[1], f"CASE {whens} ELSE {lit(s[3])} END")
        elif kind == "split":
            _, column, src, sep, idx = s
            # 0-based piece; NULL past the last one (DuckDB lists are 1-based).
            self.with_column(column, f"string_split({ident(src)}, {lit(sep)})[{idx + 1}]")
        elif kind == "regex":
            _, column, src, pattern, repl = s
            self.with_column(column, f"regexp_replace({ident(src)}, {lit(pattern)}, {lit(repl)}, 'g')")
        elif kind == "join":
            _, path, on, ref_on, cols, *schema = s
            types = schema[0] if schema else {}
            ref = self.refdir / path
            left_ty = {r[0]: r[1] for r in self.sql("DESCRIBE cur").fetchall()}[on]
            self.sql(f"CREATE OR REPLACE TABLE ref AS SELECT * FROM read_csv({lit(str(ref))}, "
                     "all_varchar = true, header = true)")
            # Reference columns are text unless the step's schema types them; '' is NULL.
            picked = ", ".join(f"CAST(nullif(r.{ident(c)}, '') AS {duck_type(types.get(c, 'string'))}) "
                               f"AS {ident(c)}" for c in cols)
            self.replace_cur(f"""SELECT cur.*, {picked} FROM cur LEFT JOIN ref r
                ON cur.{ident(on)} = CAST(r.{ident(ref_on)} AS {left_ty}) ORDER BY cur.__line""")
        elif kind == "cast":
            _, column, to = s
            src_ty = {r[0]: r[1] for r in self.sql("DESCRIBE cur").fetchall()}[column]
            if src_ty == "VARCHAR":
                # Text converts with the input parsers (no NULL markers; '' is NULL).
                conv = (f"CASE WHEN {ident(column)} = '' THEN NULL ELSE "
                        f"{typed_of_text(Col(column, to), ident(column))} END")
            else:
                conv = f"TRY_CAST({ident(column)} AS {duck_type(to)})"
            self.reject(f"{ident(column)} IS NULL OR ({conv}) IS NOT NULL", f"invalid_cast:{column}")
            self.with_column(column, f"CAST(({conv}) AS {duck_type(to)})")
        elif kind == "processed_at":
            self.with_column(s[1], f"CAST({lit(processed_at.strftime('%Y-%m-%d %H:%M:%S.%f'))} AS TIMESTAMP)")
        else:
            raise ValueError(kind)

    def quality(self, now: datetime):
        rules = []
        row_rules = []
        for r in self.case.rules:
            kind, c = r["rule"], ident(r.get("column", ""))
            if kind == "IsComplete":
                row_rules.append((r, f"{c} IS NOT NULL"))
            elif kind == "ColumnValues":
                if "matches" in r:
                    pred = f"regexp_full_match(CAST({c} AS VARCHAR), {lit(r['matches'])})"
                elif "between" in r:
                    lo, hi = r["between"]
                    pred = f"CAST({c} AS DOUBLE) BETWEEN {lo} AND {hi}"
                else:
                    pred = f"CAST({c} AS VARCHAR) IN ({', '.join(lit(v) for v in r['in'])})"
                row_rules.append((r, f"coalesce({pred}, true)"))  # nulls pass
        results = {}
        n = self.sql("SELECT count(*) FROM cur").fetchone()[0]
        for r, pred in row_rules:
            passing = self.sql(f"SELECT count(*) FROM cur WHERE {pred}").fetchone()[0]
            results[id(r)] = (passing / n if n else 1.0, n, n - passing)
        # Quarantine rules in order: a row keeps the first rule it fails as its reason.
        for r, pred in row_rules:
            if r.get("action", "quarantine") == "quarantine":
                self.reject(pred, f"rule:{r['rule']}:{r['column']}")
        n = self.sql("SELECT count(*) FROM cur").fetchone()[0]
        out_cols = set(self.columns())
        for r in self.case.rules:
            kind = r["rule"]
            thr = r.get("threshold", 1.0)
            row_level = kind in ("IsComplete", "ColumnValues")
            action = r.get("action", "quarantine" if row_level else "alert")
            c = ident(r.get("column", ""))
            failing = 0
            if row_level:
                actual, evaluated, failing = results[id(r)]
                required = thr
            elif kind == "Completeness":
                k = self.sql(f"SELECT count({c}) FROM cur").fetchone()[0]
                # Rows short of the rule: the nulls.
                actual, evaluated, required, failing = (k / n if n else 1.0), n, thr, n - k
            elif kind in ("Uniqueness", "IsUnique"):
                d, k = self.sql(f"SELECT count(DISTINCT {c}), count({c}) FROM cur").fetchone()
                actual, evaluated = (d / k if k else 1.0), k
                required = 1.0 if kind == "IsUnique" else thr
            elif kind == "DataFreshness":
                unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[r["max_age"][-1]]
                age = timedelta(**{unit: int(r["max_age"][:-1])})
                cutoff = (now - age).strftime("%Y-%m-%d %H:%M:%S.%f")
                k = self.sql(f"SELECT count(*) FILTER ({c} >= TIMESTAMP {lit(cutoff)}) "
                             "FROM cur").fetchone()[0]
                actual, evaluated, required, failing = (k / n if n else 1.0), n, thr, n - k
            elif kind == "ColumnExists":
                present = r["column"] in out_cols or r["column"] in self.found_columns
                actual, evaluated, required = float(present), n, 1.0
            elif kind == "RowCount":
                ok = r.get("min", 0) <= n <= r.get("max", n)
                actual, evaluated, required = float(n), n, float(r.get("min", 0))
                rules.append(dict(kind=kind, column=None, action=action, actual=actual,
                                  required=required, passed=ok, failing_rows=0,
                                  evaluated_rows=evaluated))
                continue
            else:
                raise ValueError(kind)
            rules.append(dict(kind=kind, column=r.get("column"), action=action, actual=actual,
                              required=required, passed=actual >= required,
                              failing_rows=failing, evaluated_rows=evaluated))
        return rules

    def first_bad_text(self, upto: int, column: str, ty: str):
        """(line, text) of the first record reaching step `upto` whose text `column` does not
        parse as `ty`, or None."""
        self.load_records()
        self.type_records()
        for s in self.case.steps[:upto]:
            self.step(s, None)
        c = ident(column)
        return self.sql(f"""SELECT __line, {c} FROM cur WHERE {c} IS NOT NULL
            AND ({typed_of_text(Col(column, ty), c)}) IS NULL ORDER BY __line LIMIT 1""").fetchone()

    def run(self, now: datetime, processed_at: datetime | None) -> Expected:
        self.load_records()
        self.type_records()
        for s in self.case.steps:
            self.step(s, processed_at)
        rules = self.quality(now)
        passed = all(r["passed"] or r["action"] != "fail" for r in rules)
        score = sum(r["passed"] for r in rules) / len(rules) if rules else 1.0
        rows_out = self.sql("SELECT count(*) FROM cur").fetchone()[0]
        by_reason: dict[str, int] = {}
        for _, code in self.q:
            by_reason[code] = by_reason.get(code, 0) + 1
        counts = dict(rows_in=self.rows_in, rows_out=rows_out, duplicates=self.duplicates,
                      quarantined=len(self.q), quarantined_by_reason=dict(sorted(by_reason.items())))
        types = {r[0]: r[1] for r in self.sql("DESCRIBE cur").fetchall() if r[0] != "__line"}
        pcols = self.case.partition_by
        data_cols = [c for c in types if c not in pcols]
        partitions: dict[str, list[tuple]] = {}
        sel = ", ".join(ident(c) for c in pcols + data_cols)
        for row in self.sql(f"SELECT {sel} FROM cur ORDER BY __line").fetchall():
            path = "/".join(f"{c}={partition_text(v)}" for c, v in zip(pcols, row))
            partitions.setdefault(path, []).append(tuple(row[len(pcols):]))
        qtext = {}
        n = len(self.case.columns)
        fields = ", ".join(f"k{i}, t{i}" for i in range(n))
        for rec in self.sql(f"SELECT line, malformed, raw, {fields} FROM rec").fetchall():
            line, malformed, raw = rec[:3]
            texts = {}
            for i, c in enumerate(self.case.columns):
                k, t = rec[3 + 2 * i], rec[4 + 2 * i]
                texts[c.name] = None if malformed or k is None or k == "NULL" else t
            texts["_raw"] = raw if malformed else None
            qtext[line] = texts
        return Expected(counts, rules, "succeeded" if passed else "quality_failed", score,
                        {c: types[c] for c in data_cols}, partitions, sorted(self.q), qtext)


# ---------------------------------------------------------------------------------------
# The engine side
# ---------------------------------------------------------------------------------------
@dataclass
class EngineRun:
    rc: int
    stderr: str
    manifest: dict | None
    out: Path
    before: datetime
    after: datetime


def run_engine(spec: Path, input_path: Path, out: Path, extra: tuple = ()) -> EngineRun:
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    p = subprocess.run([str(etl_binary()), "run", "--spec", str(spec), "--input", str(input_path),
                        "--output", str(out), "--json",
                        *(extra if "--threads" in extra else ("--threads", "1", *extra))],
                       capture_output=True, text=True, timeout=120)
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    manifest = None
    if p.stdout.strip().startswith("{"):
        manifest = json.loads(p.stdout)
    return EngineRun(p.returncode, p.stderr[-3000:], manifest, out, before, after)


def read_parquet_rows(con, path: Path, columns: list[str]) -> tuple[dict[str, str], list[tuple]]:
    # Partition values come from the path, never from DuckDB's hive detection.
    src = f"read_parquet({lit(str(path))}, hive_partitioning = false)"
    desc = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    sel = []
    for c in columns:
        t = desc.get(c)
        if t is None:
            sel.append(f"NULL AS {ident(c)}")
        elif t.startswith("TIMESTAMP WITH"):
            sel.append(f"CAST({ident(c)} AS TIMESTAMP) AS {ident(c)}")
        else:
            sel.append(ident(c))
    rows = con.execute(f"SELECT {', '.join(sel)} FROM {src}").fetchall()
    return desc, rows


# ---------------------------------------------------------------------------------------
# One whole run: input written, engine run, model computed, differences listed
# ---------------------------------------------------------------------------------------
FORMATS = {"csv": ("in.csv", write_csv, split_csv),
           "ndjson": ("in.ndjson", write_ndjson, split_ndjson),
           "json": ("in.json", write_json_array, split_json_array),
           "csv.gz": ("in.csv.gz", write_csv, split_csv),
           "tsv": ("in.tsv", write_tsv, split_tsv),
           "crlf.csv.gz": ("in.crlf.csv.gz", write_csv_crlf, split_csv),
           "objects.json": ("in.objects.json", write_json_concat, split_json_concat)}


@dataclass
class Outcome:
    label: str
    case: Case
    fmt: str
    input_path: Path
    engine: EngineRun
    expected: Expected
    processed_at: datetime | None
    con: duckdb.DuckDBPyConnection


def run_case(case: Case, fmt: str, workdir: Path, rows: int = 300, seed: int = SEED,
             extra: tuple = (), tag: str = "") -> Outcome:
    """One run; `extra` are more `etl run` flags, `tag` names the variant in labels."""
    name, writer, splitter = FORMATS[fmt]
    d = workdir / f"{case.name}-{fmt}{tag}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for ref, text in case.references.items():
        (d / ref).write_text(text, encoding="utf-8")
    spec = d / "spec.yaml"
    spec.write_text(spec_yaml(case), encoding="utf-8")
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    records = generate(case, seed + len(case.name), rows, now)
    text = writer(case, records, seed)
    input_path = d / name
    if fmt.endswith(".gz"):
        input_path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    else:
        input_path.write_text(text, encoding="utf-8")
    eng = run_engine(spec, input_path, d / "out", extra)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    processed = None
    if any(s[0] == "processed_at" for s in case.steps):
        files = sorted((d / "out" / case.name).rglob("*.parquet"))
        if files:
            (processed,) = con.execute(
                "SELECT DISTINCT CAST(processed_at AS TIMESTAMP) FROM "
                f"read_parquet({lit(str(files[0]))}, hive_partitioning = false)"
            ).fetchone()
    raw = splitter(text)
    model = Model(case, raw, d, now)
    try:
        started = eng.before
        if eng.manifest and eng.manifest.get("started_at"):
            started = datetime.fromisoformat(
                eng.manifest["started_at"].replace("Z", "+00:00")).replace(tzinfo=None)
        # The freshness clock is the pipeline's `now`, which processed_at shows.
        expected = model.run(processed or started, processed or started)
    finally:
        model.close()
    return Outcome(f"{case.name}/{fmt}{tag}", case, fmt, input_path, eng, expected, processed, con)


# ---- comparisons: each returns a list of finding lines ----------------------------
def _engine_ok(o: Outcome) -> list[str]:
    if o.engine.manifest is None:
        return [f"{o.label}: the engine run failed (exit {o.engine.rc}): {o.engine.stderr.strip()[-800:]}"]
    return []


def diff_counts(o: Outcome) -> list[str]:
    if bad := _engine_ok(o):
        return bad
    got = o.engine.manifest["counts"]
    found = []
    for k, v in o.expected.counts.items():
        if k == "quarantined_by_reason":
            keys = sorted(set(v) | set(got.get(k, {})))
            for code in keys:
                if v.get(code, 0) != got.get(k, {}).get(code, 0):
                    found.append(f"{o.label}: quarantined_by_reason[{code}] expected "
                                 f"{v.get(code, 0)}, got {got.get(k, {}).get(code, 0)}")
        elif got.get(k) != v:
            found.append(f"{o.label}: counts.{k} expected {v}, got {got.get(k)}")
    if o.engine.manifest.get("status") != o.expected.status:
        found.append(f"{o.label}: status expected {o.expected.status}, got {o.engine.manifest.get('status')}")
    return found


def diff_rules(o: Outcome) -> list[str]:
    if bad := _engine_ok(o):
        return bad
    q = o.engine.manifest["quality"]
    got = q["rules"]
    found = []
    if len(got) != len(o.expected.rules):
        return [f"{o.label}: {len(got)} rule results, expected {len(o.expected.rules)}"]
    for i, (e, g) in enumerate(zip(o.expected.rules, got)):
        for k in ("kind", "column", "action", "passed", "failing_rows", "evaluated_rows"):
            if e[k] != g.get(k):
                found.append(f"{o.label}: rule {i} {g.get('rule')}: {k} expected {e[k]!r}, got {g.get(k)!r}")
        for k in ("actual", "required"):
            if abs(e[k] - float(g.get(k, "nan"))) > 1e-9:
                found.append(f"{o.label}: rule {i} {g.get('rule')}: {k} expected {e[k]!r}, got {g.get(k)!r}")
    if abs(q["score"] - o.expected.score) > 1e-9:
        found.append(f"{o.label}: score expected {o.expected.score}, got {q['score']}")
    return found


def diff_output(o: Outcome) -> list[str]:
    if bad := _engine_ok(o):
        return bad
    base = o.engine.out / o.case.name
    files = sorted(base.rglob("*.parquet")) if base.exists() else []
    if o.expected.status != "succeeded":
        return [f"{o.label}: data published although a fail rule failed: {files}"] if files else []
    got: dict[str, list] = {}
    cols = list(o.expected.columns)
    found = []
    for f in files:
        part = f.parent.relative_to(base).as_posix().removeprefix(".")  # "" when unpartitioned
        desc, rows = read_parquet_rows(o.con, f, cols)
        extra = set(desc) - set(cols)
        missing = set(cols) - set(desc)
        if extra or missing:
            found.append(f"{o.label}: {part}: columns not expected {sorted(extra)}, "
                         f"missing {sorted(missing)}")
        for c in cols:
            if c in desc and family(desc[c]) != family(o.expected.columns[c]):
                found.append(f"{o.label}: column {c} is {desc[c]}, expected {o.expected.columns[c]}")
        got.setdefault(part, []).extend(rows)
    found = sorted(set(found))
    for part in sorted(set(got) | set(o.expected.partitions)):
        g, e = got.get(part, []), o.expected.partitions.get(part, [])
        if len(g) != len(e):
            found.append(f"{o.label}: partition {part}: {len(g)} rows, expected {len(e)}")
            # Rows do not line up: list the ones on one side only, by their first columns.
            keys = lambda rows: [tuple(map(show, r[:3])) for r in rows]  # noqa: E731
            gk, ek = keys(g), keys(e)
            found += [f"{o.label}: partition {part}: missing row {k}" for k in ek if k not in gk][:10]
            found += [f"{o.label}: partition {part}: unexpected row {k}" for k in gk if k not in ek][:10]
            continue
        for idx, (gr, er) in enumerate(zip(g, e)):
            bad = [(c, gv, ev) for c, gv, ev in zip(cols, gr, er) if not same_value(gv, ev)]
            if bad:
                row = dict(zip(cols, er))
                key = {k: row.get(k) for k in list(row)[:2]}
                found.append(f"{o.label}: partition {part} row {idx} ({key}): " + "; ".join(
                    f"{c} expected {show(ev)}, got {show(gv)}" for c, gv, ev in bad))
                if len(found) > 40:
                    return found
    return found


def engine_quarantine(o: Outcome):
    path = o.engine.out / "_quarantine" / o.case.name
    files = sorted(path.rglob("*.parquet")) if path.exists() else []
    if not files:
        return None, []
    cols = ["_source_line", "_reject_code", "_raw"] + [c.name for c in o.case.columns]
    rows = []
    desc = {}
    for f in files:
        desc, r = read_parquet_rows(o.con, f, cols)
        rows += r
    return desc, rows


def diff_quarantine_codes(o: Outcome) -> list[str]:
    if bad := _engine_ok(o):
        return bad
    _, rows = engine_quarantine(o)
    got = sorted((int(r[0]), r[1]) for r in rows)
    exp = o.expected.quarantine
    if got == exp:
        return []
    for shift in (-1, 1):
        if got == sorted((ln + shift, code) for ln, code in exp):
            return [f"{o.label}: reasons all right, but every _source_line is {shift:+d} from the "
                    f"record's line in the file (e.g. line {exp[0][0]} {exp[0][1]} reported as "
                    f"line {got[0][0]})"]
    g, e = set(got), set(exp)
    found = [f"{o.label}: line {ln}: expected quarantine {code}, got "
             f"{[c for l2, c in got if l2 == ln] or 'no quarantine row'}" for ln, code in sorted(e - g)]
    found += [f"{o.label}: line {ln}: quarantined as {code}, expected "
              f"{[c for l2, c in exp if l2 == ln] or 'not quarantined'}" for ln, code in sorted(g - e)]
    if len(got) != len(g) or len(exp) != len(e):
        found.append(f"{o.label}: a line is quarantined more than once (got {len(got)} rows, "
                     f"{len(g)} distinct; expected {len(exp)})")
    return found


def _same_text(o: Outcome, expected, got) -> bool:
    """In JSON input a number's quarantine text is rendered from its value (README), so
    `-1e19` may read back as `-1e+19`: there, numbers compare by value. CSV text is exact."""
    if got == expected:
        return True
    if "json" not in o.label or expected is None or got is None:
        return False
    try:
        return float(expected) == float(got)
    except ValueError:
        return False


def text_differences(o: Outcome) -> list[tuple]:
    """(line, code, column, expected, got) for every quarantine text that differs."""
    desc, rows = engine_quarantine(o)
    found = []
    names = [c.name for c in o.case.columns]
    for r in rows:
        line, code, raw = int(r[0]), r[1], r[2]
        exp = o.expected.quarantine_text.get(line)
        if exp is None:
            continue  # reported by the codes test
        found += [(line, code, c, exp[c], g) for c, g in zip(names, r[3:])
                  if not _same_text(o, exp[c], g)]
        if raw != exp["_raw"]:
            found.append((line, code, "_raw", exp["_raw"], raw))
    return found


def diff_quarantine_text(o: Outcome) -> list[str]:
    if bad := _engine_ok(o):
        return bad
    desc, _ = engine_quarantine(o)
    found = [f"{o.label}: quarantine column {c.name} is {desc[c.name]}, expected text"
             for c in o.case.columns if desc and desc.get(c.name, "VARCHAR") != "VARCHAR"]
    return found + [f"{o.label}: line {ln} ({code}): {c} expected {e!r}, got {g!r}"
                    for ln, code, c, e, g in text_differences(o)]


def summarize_text(outcomes: list[Outcome]) -> list[str]:
    """Text differences grouped by run, reject reason kind and column, one example each."""
    groups: dict[tuple, list] = {}
    for o in outcomes:
        if o.engine.manifest is None:
            continue
        for ln, code, c, e, g in text_differences(o):
            kind = code.split(":")[0] if not code.startswith("rule:") else ":".join(code.split(":")[:2])
            groups.setdefault((o.label, kind, c), []).append((ln, code, e, g))
    return [f"{label}: {kind} rows, column {c}: {len(v)} differ, e.g. line {v[0][0]} "
            f"({v[0][1]}): expected {v[0][2]!r}, got {v[0][3]!r}"
            for (label, kind, c), v in sorted(groups.items())]


# ---- the findings log ----------------------------------------------------------------
def record(section: str, lines: list[str], summary: str = "") -> None:
    """Rewrites one section of build/spec-findings.md (sections sorted by name)."""
    FINDINGS.parent.mkdir(parents=True, exist_ok=True)
    text = FINDINGS.read_text(encoding="utf-8") if FINDINGS.exists() else ""
    parts = re.split(r"(?m)^(?=## )", text)
    head = parts[0] if parts and not parts[0].startswith("## ") else ""
    sections = {p.split("\n", 1)[0][3:].strip(): p for p in parts if p.startswith("## ")}
    if not head.strip():
        head = ("# Whole-spec differential test: mismatches (engine vs a DuckDB model)\n\n"
                "Written by tests/semantics/test_specs.py on every run (one section per check);\n"
                "reproduce with `tests/semantics/run.sh test_specs.py` (SPEC_SEED=n for\n"
                "other inputs; work files stay in build/spec-runs/).\n\n")
    body = [f"## {section}", "",
            f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC, seed {SEED}. {summary}".rstrip(), ""]
    body += [f"- {ln}" for ln in lines[:250]] or ["No mismatches."]
    if len(lines) > 250:
        body.append(f"- ... and {len(lines) - 250} more")
    sections[section] = "\n".join(body) + "\n\n"
    FINDINGS.write_text(head + "".join(sections[k] for k in sorted(sections)), encoding="utf-8")
