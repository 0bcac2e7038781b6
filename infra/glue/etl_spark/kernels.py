"""Value semantics the Spark runner cannot take from Spark itself, in plain Python.

Each function is the Python twin of the engine's Rust code it names, so a value parses,
prints and maps the same on both engines: the input parsers (shared/etl-core/src/types.rs),
the text of a double and case mapping (sql/kernels.rs). The runner registers them as Spark
functions under the names the plan's SQL calls (`etl_*`). None of them raises: a value that
does not parse is None, and `parse_error` says why.
"""

from __future__ import annotations

import datetime as _dt
import math
import re

_EPOCH = _dt.date(1970, 1, 1)
_MAX = 60
_BIGINT = re.compile(r"[+-]?[0-9]+")
# Rust's f64 grammar; "inf" and "nan" parse there but are refused as data.
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_LENIENT_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_NAIVE = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})[T ]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})"
    r"(\.[0-9]{0,9})?"
)
# Rust's str::trim: Unicode White_Space.
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def truncate(s: str) -> str:
    """One line of at most 60 characters (types::truncate)."""
    one = "".join(" " if _is_control(c) else c for c in s)
    return one[:_MAX] + "..." if len(one) > _MAX else one


def _is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o < 0xA0


def _trim(s: str) -> str:
    return s.strip(_WS)


def parse_bigint(s: str) -> int | None:
    t = _trim(s)
    if not _BIGINT.fullmatch(t):
        return None
    v = int(t)
    return v if -(2**63) <= v < 2**63 else None


def parse_double(s: str) -> float | None:
    t = _trim(s)
    if not _DOUBLE.fullmatch(t):
        return None
    v = float(t)
    return v if math.isfinite(v) else None


def parse_boolean(s: str) -> bool | None:
    t = _trim(s).lower() if _trim(s).isascii() else None
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def decimal_error(s: str, precision: int, scale: int) -> str | None:
    """Why `s` is not a decimal(precision, scale), or None (types::parse_decimal)."""
    t = _trim(s)
    digits = t[1:] if t[:1] in ("-", "+") else t
    int_part, _, frac_part = digits.partition(".")
    if (
        (not int_part and not frac_part)
        or not (int_part.isascii() and (int_part.isdigit() or not int_part))
        or not (frac_part.isascii() and (frac_part.isdigit() or not frac_part))
    ):
        return f"'{truncate(s)}' is not a valid decimal({precision},{scale})"
    if len(frac_part.rstrip("0")) > scale:
        return f"'{truncate(s)}' has more than {scale} decimal places for decimal({precision},{scale})"
    if len(int_part.lstrip("0")) + scale > precision:
        return f"'{truncate(s)}' does not fit decimal({precision},{scale})"
    return None


def parse_decimal(s: str, precision: int, scale: int) -> str | None:
    """The value's plain text at the scale, for a CAST to decimal(precision, scale)."""
    if decimal_error(s, precision, scale) is not None:
        return None
    t = _trim(s)
    sign = "-" if t.startswith("-") else ""
    digits = t.lstrip("+-")
    int_part, _, frac_part = digits.partition(".")
    frac = frac_part.rstrip("0").ljust(scale, "0")
    return f"{sign}{int_part or '0'}.{frac}" if scale else f"{sign}{int_part or '0'}"


def _date(y: int, m: int, d: int) -> _dt.date | None:
    try:
        return _dt.date(y, m, d)
    except ValueError:
        return None


def _micros(d: _dt.date, h: int, mi: int, sec: int, frac: str | None) -> int | None:
    if not (h < 24 and mi < 60 and sec < 60):
        return None
    days = (d - _EPOCH).days
    us = int((frac or ".")[1:7].ljust(6, "0"))
    return ((days * 24 + h) * 60 + mi) * 60_000_000 + sec * 1_000_000 + us


def _datetime_utc(t: str) -> int | None:
    m = _RFC3339.fullmatch(t)
    if m:
        d = _date(int(m[1]), int(m[2]), int(m[3]))
        us = d and _micros(d, int(m[4]), int(m[5]), int(m[6]), m[7])
        if us is None:
            return None
        if m[9]:
            offset = (int(m[10]) * 60 + int(m[11])) * 60_000_000
            us -= offset if m[9] == "+" else -offset
        return us
    m = _NAIVE.fullmatch(t)
    if m:
        d = _date(int(m[1]), int(m[2]), int(m[3]))
        return d and _micros(d, int(m[4]), int(m[5]), int(m[6]), m[7])
    m = _LENIENT_DATE.fullmatch(t)
    if m:
        d = _date(int(m[1]), int(m[2]), int(m[3]))
        return None if d is None else (d - _EPOCH).days * 86_400_000_000
    return None


_FIELDS = {"Y": r"([0-9]{4})", "m": r"([0-9]{1,2})", "d": r"([0-9]{1,2})",
           "H": r"([0-9]{1,2})", "M": r"([0-9]{1,2})", "S": r"([0-9]{1,2})"}


def _format_fields(t: str, fmt: str) -> dict[str, int] | None:
    """Reads `t` with a format of %Y %m %d %H %M %S, separators and whitespace (the plan
    refuses others)."""
    pattern, names, i = "", [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            k = fmt[i + 1]
            if k == "%":
                pattern += "%"
            else:
                pattern += _FIELDS[k]
                names.append(k)
            i += 2
        elif c.isspace():
            # chrono skips any run of whitespace, or none, where the format has some.
            pattern += f"[{_WS}]*"
            i += 1
        else:
            pattern += re.escape(c)
            i += 1
    m = re.fullmatch(pattern, t)
    if not m:
        return None
    return {k: int(v) for k, v in zip(names, m.groups())}


def parse_date(s: str, fmt: str | None = None) -> int | None:
    """Days since 1970-01-01 (types::parse_date)."""
    t = _trim(s)
    if fmt is not None:
        f = _format_fields(t, fmt)
        d = f and _date(f.get("Y", -1), f.get("m", -1), f.get("d", -1))
    else:
        m = _ISO_DATE.fullmatch(t) or _LENIENT_DATE.fullmatch(t)
        d = m and _date(int(m[1]), int(m[2]), int(m[3]))
        if not d:
            us = _datetime_utc(t)
            return None if us is None else us // 86_400_000_000
    return None if not d else (d - _EPOCH).days


def parse_timestamp(s: str, fmt: str | None = None) -> int | None:
    """Microseconds since the epoch, UTC (types::parse_timestamp)."""
    t = _trim(s)
    if fmt is None:
        return _datetime_utc(t)
    f = _format_fields(t, fmt)
    if not f or "H" not in f or "M" not in f:
        return None
    d = _date(f.get("Y", -1), f.get("m", -1), f.get("d", -1))
    return d and _micros(d, f["H"], f["M"], f.get("S", 0), None)


def parse_error(s: str, type_name: str, fmt: str | None = None) -> str | None:
    """Why `s` does not parse as `type_name`, in the engine's words; None when it does."""
    if s is None:
        return None
    t = type_name.strip().lower()
    if t == "string":
        return None
    if t.startswith("decimal("):
        p, sc = (int(x) for x in t[8:-1].split(","))
        return decimal_error(s, p, sc)
    ok = {
        "bigint": lambda: parse_bigint(s),
        "double": lambda: parse_double(s),
        "boolean": lambda: parse_boolean(s),
        "date": lambda: parse_date(s, fmt),
        "timestamp": lambda: parse_timestamp(s, fmt),
    }[t]()
    if ok is not None:
        return None
    if t == "date":
        tail = f"(format {fmt})" if fmt else "(expected YYYY-MM-DD)"
        return f"'{truncate(s)}' is not a valid date {tail}"
    if t == "timestamp":
        tail = f"(format {fmt})" if fmt else "(expected RFC 3339 or YYYY-MM-DD HH:MM:SS)"
        return f"'{truncate(s)}' is not a valid timestamp {tail}"
    return f"'{truncate(s)}' is not a valid {t}"


def double_text(x: float | None) -> str | None:
    """A double as the engine prints it (kernels::double_text): Python's repr, which is
    the same shortest round-trip text with the same exponent rule."""
    if x is None:
        return None
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return repr(x)


def _upper_char(c: str) -> str:
    u = c.upper()
    if len(u) == 1:
        return u
    return "ẞ" if c == "ß" else c


def _lower_char(c: str) -> str:
    lo = c.lower()
    if len(lo) == 1:
        return lo
    return "i" if c == "İ" else c


def upper(s: str | None) -> str | None:
    """One code point at a time (kernels::change_case)."""
    return None if s is None else "".join(_upper_char(c) for c in s)


def lower(s: str | None) -> str | None:
    return None if s is None else "".join(_lower_char(c) for c in s)


def substr(text: str | None, start: int | None, length: int | None = 2**63 - 1) -> str | None:
    """1-based, DuckDB's rules for starts and lengths out of range (kernels::substring)."""
    if text is None or start is None or length is None:
        return None
    n = len(text)
    frm = start - 1 if start > 0 else (-1 if start == 0 else n + start)
    to = frm + length
    if length < 0:
        frm, to = frm + length, frm
    frm, to = min(max(frm, 0), n), min(max(to, 0), n)
    return text[frm:to] if frm < to else ""


def register(spark, udfs: dict[str, str]) -> None:
    """Registers the functions a plan's SQL calls, with the return types it names."""
    from pyspark.sql import types as T

    kinds = {"string": T.StringType(), "bigint": T.LongType(), "double": T.DoubleType(),
             "boolean": T.BooleanType(), "int": T.IntegerType()}

    def nullsafe(f):
        return lambda s, *rest: None if s is None else f(s, *rest)

    functions = {
        "etl_double_text": double_text,
        "etl_upper": upper,
        "etl_lower": lower,
        "etl_substr": substr,
        "etl_parse_bigint": nullsafe(parse_bigint),
        "etl_parse_double": nullsafe(parse_double),
        "etl_parse_boolean": nullsafe(parse_boolean),
        "etl_parse_decimal": nullsafe(parse_decimal),
        "etl_parse_date": nullsafe(parse_date),
        "etl_parse_timestamp": nullsafe(parse_timestamp),
        "etl_parse_error": parse_error,
    }
    for name, kind in udfs.items():
        if name not in functions:
            raise ValueError(f"the plan calls {name}, which this runner does not have")
        spark.udf.register(name, functions[name], kinds[kind])
