"""Pure logic of the harness: the engine-to-DuckDB translation and value comparison."""

import math
from decimal import Decimal

import duckdb
import pytest

from engine import family, same_value, spec_yaml, to_duckdb, Base


@pytest.mark.parametrize(
    "engine_sql, duck_sql",
    [
        ("regexp_like(s, 'a')", "regexp_matches(s, 'a')"),
        ("REGEXP_LIKE(s, 'regexp_like(')", "regexp_matches(s, 'regexp_like(')"),
        ("TIMESTAMP '2024-01-31 12:00:00'", "TIMESTAMP '2024-01-31 12:00:00'"),
        ("TIMESTAMP '2024-01-31T12:00:00+02:00'",
         "CAST(TIMESTAMPTZ '2024-01-31T12:00:00+02:00' AS TIMESTAMP)"),
        ("ts > timestamp  '2024-01-31 12:00:00Z'",
         "ts > CAST(TIMESTAMPTZ '2024-01-31 12:00:00Z' AS TIMESTAMP)"),
        ("'TIMESTAMP' || '+02:00'", "'TIMESTAMP' || '+02:00'"),
    ],
)
def test_to_duckdb(engine_sql, duck_sql):
    assert to_duckdb(engine_sql) == duck_sql


def test_bigint_literals_leave_types_and_decimals_alone():
    sql = "CAST(100000 * 100000 AS decimal(18,2)) + 2.5 + 1e3 + \"c1\" + '7'"
    assert to_duckdb(sql, bigint_literals=True) == (
        "CAST(CAST(100000 AS BIGINT) * CAST(100000 AS BIGINT) AS decimal(18,2))"
        " + 2.5 + 1e3 + \"c1\" + '7'"
    )


def test_offset_translation_matches_utc_instant():
    # The translated literal is the UTC wall clock of the instant, as the engine models it.
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    got = con.execute("SELECT " + to_duckdb("TIMESTAMP '2024-01-31T12:00:00+02:00'")).fetchone()
    assert got[0].isoformat() == "2024-01-31T10:00:00"


def test_same_value():
    assert same_value(float("nan"), float("nan"))
    assert not same_value(float("nan"), 1.0)
    assert same_value(0.1 + 0.2, 0.3)
    assert not same_value(1.0, 1.0 + 1e-9)
    assert same_value(math.inf, math.inf) and not same_value(math.inf, -math.inf)
    assert same_value(Decimal("1.50"), Decimal("1.5"))
    assert same_value(3, Decimal("3.00"))
    assert not same_value(True, 1)
    assert not same_value("1", 1)
    assert same_value(None, None) and not same_value(None, 0)


def test_family():
    assert family("INTEGER") == family("BIGINT") == "bigint"
    assert family("DECIMAL(18,2)") == family("DECIMAL(38,2)") == ("decimal", 2)
    assert family("DECIMAL(38,3)") != family("DECIMAL(38,2)")
    assert family("TIMESTAMP WITH TIME ZONE") == family("TIMESTAMP") == "timestamp"
    assert family('"NULL"') is None


def test_spec_yaml_quotes_sql():
    base = Base({"s": "string"}, [{"s": "a"}])
    text = spec_yaml(base, ["s || '\"x\": \\\\ 😀\t'"])
    assert 'sql: "s || \'\\"x\\": \\\\\\\\ 😀\\t\'"' in text


def test_failed_step_and_error_text():
    from engine import _error_text, _failed_step

    assert _failed_step("invalid spec s.yaml line 19 (steps[12].derive): boom") == 12
    assert _failed_step("error: opening in.csv") is None
    text = "thread 'main' panicked at x.rs:1:2:\nboom\nstack backtrace:\n   0: f\n   1: g"
    assert _error_text(text) == "thread 'main' panicked at x.rs:1:2:\nboom"


def test_cause_groups_by_shape_and_error():
    from engine import Mismatch, Outcome
    from test_random import cause

    def value(expr):
        return Mismatch(expr, 0, {}, Outcome(), Outcome(), "value")

    assert cause(value("ltrim('a', s1)")) == cause(value("ltrim('b', s2)"))
    assert cause(value("ltrim('a', s1)")) != cause(value("rtrim('a', s1)"))
    e1 = Mismatch("abs(0)", None, None, Outcome(error="line 18 (steps[0].derive): bad i32"),
                  Outcome(), "error")
    e2 = Mismatch("abs(7)", None, None, Outcome(error="line 19 (steps[3].derive): bad i32"),
                  Outcome(), "error")
    assert cause(e1) == cause(e2)


def test_cause_groups_text_by_what_differs():
    from engine import Mismatch, Outcome
    from test_random import cause

    def text(expr, a, b):
        return Mismatch(expr, 0, {}, Outcome(), Outcome(), "value", a, b)

    assert cause(text("x", "lnan", "l-nan")) == cause(text("concat(y)", "nan", "-nan"))
    assert cause(text("x", "-0.0", "0.0")) != cause(text("x", "nan", "-nan"))
    assert cause(text("upper(s)", "STRASSE", "STRAẞE")) != cause(text("lower(s)", "a", "b"))


def test_plain_text_is_never_a_known_difference():
    from engine import _plain

    assert _plain("42", "bigint") and _plain("-7", "bigint")
    assert not _plain("1.5", "bigint") and not _plain(" 12 ", "bigint")
    assert _plain("1.50", "decimal(6,2)") and not _plain("1.234", "decimal(4,2)")
    assert not _plain("123.4", "decimal(4,2)")
    assert _plain("1e3", "double") and _plain("2024-01-31", "date")
    assert _plain("2024-01-31 10:00:00", "timestamp") and not _plain("abc", "date")
