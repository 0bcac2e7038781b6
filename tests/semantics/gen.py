"""A seeded generator of well-typed spec expressions, and the base rows they run over.

Types: int (bigint), dbl (double), dec (decimal), str, bool, date, ts. Every node renders
with parentheses around operators, so precedence never decides a result and DuckDB never
reads `%-` as one operator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from engine import Base


@dataclass(frozen=True)
class Node:
    sql: str
    ty: str
    kids: tuple = field(default=())
    # Rebuilds this node around new children (same order); None for leaves.
    build: object = field(default=None, compare=False, hash=False, repr=False)

    def size(self) -> int:
        return 1 + sum(k.size() for k in self.kids)

    def subtrees(self):
        yield self
        for k in self.kids:
            yield from k.subtrees()


def op(fmt: str, ty: str, *kids: Node) -> Node:
    def build(*ks):
        return Node(fmt.format(*(k.sql for k in ks)), ty, tuple(ks), build)

    return build(*kids)


# ---- base rows ------------------------------------------------------------------------
ROWS = 24


def _cyc(vals):
    return [vals[i % len(vals)] for i in range(ROWS)]


COLUMNS = {
    "i1": ("bigint", ["0", "1", "-1", "7", "-7", "42", None, "1000", "-999", "2", "3", "13"]),
    "i2": ("bigint", ["3", "-3", "0", None, "5", "-2", "100", "1", "-64", "11", "6"]),
    "f1": ("double", ["0.0", "-0.0", "2.5", "-1.5", "0.1", "1e10", "1e-5", None, "3.75",
                      "-2.5", "0.5", "123.456", "1e22"]),
    "f2": ("double", ["2.0", "-0.5", None, "0.0", "7.25", "-3.0", "1e-7", "0.3", "10.0"]),
    "m1": ("decimal(10,2)", ["0.00", "1.50", "-1.50", "12.50", None, "-0.01", "0.57", "99.99",
                             "-2.25", "3.00", "0.05"]),
    "m2": ("decimal(8,4)", ["0.1250", "-2.5000", None, "0.0000", "1.0050", "-0.0001",
                            "3.3333", "10.0000", "0.5000"]),
    "s1": ("string", ["hello", "Straße", "İzmir", "ﬁle", "e\u0301a", "日本語", "😀👍🏽",
                      " pad ", "a_b%c", None, "ÅSA", "x", "Tab\there", "ωΣ"]),
    "s2": ("string", ["l", "ß", None, "ab", "😀", "HELLO", "本", "  ", "%", "e"]),
    "sn": ("string", ["42", "-7", "0", "123", "abc", None, "-100000", "x1", "9"]),
    "b1": ("boolean", ["true", "false", None, "true", "false", "false"]),
    "d1": ("date", ["2024-01-31", "1969-12-31", "1900-02-28", "1970-01-01", None,
                    "2000-02-29", "1812-06-24", "2099-12-31", "1999-01-01", "1960-07-04"]),
    "t1": ("timestamp", ["2024-01-31 12:00:00", "1969-12-31 23:59:59.999999",
                         "2024-02-29T23:30:00+02:00", "1970-01-01 00:00:00.5", None,
                         "2021-03-04T05:06:07.25-03:30", "1950-05-05 05:05:05.05",
                         "2000-01-01 00:00:00"]),
}

COLS_BY_TYPE = {
    "int": ["i1", "i2"], "dbl": ["f1", "f2"], "dec": ["m1", "m2"], "str": ["s1", "s2"],
    "bool": ["b1"], "date": ["d1"], "ts": ["t1"],
}


def base() -> Base:
    cols = {k: v[0] for k, v in COLUMNS.items()}
    data = {k: _cyc(v[1]) for k, v in COLUMNS.items()}
    return Base(cols, [{k: data[k][r] for k in cols} for r in range(ROWS)])


# ---- literals -------------------------------------------------------------------------
INT_LITS = ["0", "1", "2", "3", "7", "10", "100", "-1", "-5"]
DBL_LITS = ["1e3", "2.5e0", "0.1e0", "-1.5e0", "1e-3", "0e0"]
DEC_LITS = ["2.5", "0.05", "1.25", "-0.5", "100.0", "3.125"]
STR_LITS = ["'a'", "'hello'", "'ß'", "'日本'", "'😀'", "' '", "'x''y'", "'L'", "'%'", "'É'"]
DATE_LITS = ["DATE '2024-01-31'", "DATE '1969-07-20'", "DATE '1970-01-01'", "DATE '1900-03-01'",
             "DATE '2000-02-29'"]
TS_LITS = ["TIMESTAMP '2024-01-31 12:00:00'", "TIMESTAMP '1969-12-31 23:59:59.5'",
           "TIMESTAMP '2024-01-31T12:00:00+02:00'", "TIMESTAMP '2000-01-01 00:00:00.000001'",
           "TIMESTAMP '1999-12-31T22:00:00-05:00'", "TIMESTAMP '2024-02-29T00:00:00Z'"]
LITS = {"int": INT_LITS, "dbl": DBL_LITS, "dec": DEC_LITS, "str": STR_LITS,
        "bool": ["TRUE", "FALSE"], "date": DATE_LITS, "ts": TS_LITS}
LIKE_PATS = ["'%l%'", "'h%'", "'%o'", "'_'", "'__%'", "'%ß%'", "'%😀%'", "'%!%%' ESCAPE '!'",
             "'a!_b%' ESCAPE '!'", "'%'", "'%e%a'", "'日%'"]
REGEXES = ["'^h'", "'l+'", "'[0-9]'", "'^.{3}$'", "'(?i)straße'", "'\\s'", "'^$'", "'[^a-z]'"]
FIELDS = ["year", "month", "day", "hour", "minute", "second"]
NUMERIC = ("int", "dbl", "dec")


def esc(text: str) -> str:
    """Text placed inside an `op` format string."""
    return text.replace("{", "{{").replace("}", "}}")


def leaf(rng: random.Random, ty: str) -> Node:
    if rng.random() < 0.7:
        return Node(rng.choice(COLS_BY_TYPE[ty]), ty)
    lit = rng.choice(LITS[ty])
    return Node(f"({lit})" if lit.startswith("-") else lit, ty)


class Gen:
    def __init__(self, seed: int, max_depth: int = 4):
        self.rng = random.Random(seed)
        self.max_depth = max_depth

    def expr(self) -> Node:
        ty = self.rng.choice(["int", "dbl", "dec", "str", "bool", "bool", "date", "ts", "str"])
        # The top is never a leaf: a bare column or literal compares nothing new.
        return getattr(self, "g_" + ty)(self.max_depth - 1)

    def gen(self, ty: str, depth: int) -> Node:
        r = self.rng
        if depth <= 0 or r.random() < 0.25:
            return leaf(r, ty)
        d = depth - 1
        return getattr(self, "g_" + ty)(d)

    def num(self, d: int, *tys) -> Node:
        return self.gen(self.rng.choice(tys or NUMERIC), d)

    # Shared by every type: CASE, coalesce, nullif.
    def common(self, ty: str, d: int) -> Node:
        r = self.rng
        k = r.randrange(4)
        if k == 0:
            return op("CASE WHEN {} THEN {} ELSE {} END", ty, self.gen("bool", d),
                      self.gen(ty, d), self.gen(ty, d))
        if k == 1:
            # Simple CASE on a column; with an ELSE, or most rows would be NULL.
            col = Node(r.choice(COLS_BY_TYPE[ty]), ty)
            if r.random() < 0.3:
                return op("CASE {} WHEN {} THEN {} END", ty, col, leaf(r, ty), self.gen(ty, d))
            return op("CASE {} WHEN {} THEN {} ELSE {} END", ty, col, leaf(r, ty),
                      self.gen(ty, d), self.gen(ty, d))
        if k == 2:
            return op("coalesce({}, {})", ty, self.gen(ty, d), self.gen(ty, d))
        return op("nullif({}, {})", ty, self.gen(ty, d), leaf(r, ty))

    def g_int(self, d):
        r = self.rng
        k = r.randrange(13)
        if k < 3:
            return op("({} " + "+-*"[k] + " {})", "int", self.gen("int", d), self.gen("int", d))
        if k == 3:
            return op("({} % nullif({}, 0))", "int", self.gen("int", d), self.gen("int", d))
        if k == 4:
            return op("(- {})", "int", self.gen("int", d))
        if k == 5:
            return op("abs({})", "int", self.gen("int", d))
        if k == 6:
            return op("length({})", "int", self.gen("str", d))
        if k == 7:
            f = r.choice(FIELDS)
            src = self.gen(r.choice(["date", "ts"]), d)
            if r.random() < 0.5:
                return op(f"date_part('{f}', {{}})", "int", src)
            return op(f"EXTRACT({f} FROM {{}})", "int", src)
        if k == 8:
            return op("TRY_CAST({} AS bigint)", "int", self.num(d, "dbl", "dec"))
        if k == 9:
            return op("CAST({} AS bigint)", "int", self.gen(r.choice(["dec", "bool"]), d))
        if k == 10:
            return op("TRY_CAST({} AS bigint)", "int", Node("sn", "str"))
        return self.common("int", d)

    def g_dbl(self, d):
        r = self.rng
        k = r.randrange(9)
        if k < 3:
            a, b = self.gen("dbl", d), self.num(d)
            if r.random() < 0.5:
                a, b = b, a
            return op("({} " + "+-*"[k] + " {})", "dbl", a, b)
        if k == 3:
            return op("({} / {})", "dbl", self.num(d), self.num(d))
        if k == 4:
            return op("({} % {})", "dbl", self.gen("dbl", d), self.gen("dbl", d))
        if k == 5:
            return op(r.choice(["(- {})", "abs({})"]), "dbl", self.gen("dbl", d))
        if k == 6:
            return op("CAST({} AS double)", "dbl", self.num(d, "int", "dec"))
        if k == 7:
            return op("TRY_CAST({} AS double)", "dbl", Node("sn", "str"))
        return self.common("dbl", d)

    def g_dec(self, d):
        r = self.rng
        k = r.randrange(9)
        if k < 2:
            a, b = self.gen("dec", d), self.num(d, "int", "dec")
            if r.random() < 0.5:
                a, b = b, a
            return op("({} " + "+-"[k] + " {})", "dec", a, b)
        if k == 2:
            # shallow: scales add up under *
            return op("({} * {})", "dec", self.gen("dec", min(d, 1)),
                      self.num(min(d, 1), "int", "dec"))
        if k == 3:
            return op("({} % nullif({}, 0))", "dec", self.gen("dec", d),
                      self.num(d, "int", "dec"))
        if k == 4:
            return op(r.choice(["(- {})", "abs({})"]), "dec", self.gen("dec", d))
        if k == 5:
            return op("CAST({} AS decimal(18,2))", "dec", self.gen("int", d))
        if k == 6:
            t = r.choice(["decimal(12,3)", "decimal(10,1)", "decimal(9,0)", "decimal(20,6)"])
            src = r.choice(["dec", "dec", "dbl"])
            return op(f"TRY_CAST({{}} AS {t})", "dec", self.gen(src, d))
        if k == 7:
            return op("TRY_CAST({} AS decimal(12,2))", "dec", Node("sn", "str"))
        return self.common("dec", d)

    def g_str(self, d):
        r = self.rng
        k = r.randrange(12)
        if k == 0:
            return op("({} || {})", "str", self.gen("str", d), self.gen("str", d))
        if k == 1:
            return op(r.choice(["upper({})", "lower({})"]), "str", self.gen("str", d))
        if k == 2:
            f = r.choice(["trim", "ltrim", "rtrim"])
            if r.random() < 0.5:
                return op(f + "({})", "str", self.gen("str", d))
            return op(f + "({}, {})", "str", self.gen("str", d), leaf(r, "str"))
        if k == 3:
            start = r.choice(["1", "2", "0", "(-1)", "(-3)", "5", "i2"])
            if r.random() < 0.4:
                return op(f"substr({{}}, {start})", "str", self.gen("str", d))
            n = r.choice(["1", "2", "0", "(-1)", "3", "i1"])
            return op(f"substr({{}}, {start}, {n})", "str", self.gen("str", d))
        if k == 4:
            return op("replace({}, {}, {})", "str", self.gen("str", d), leaf(r, "str"),
                      leaf(r, "str"))
        if k == 5:
            kids = [self.gen(r.choice(["str", "str", "int", "dec", "dbl", "date", "ts",
                                       "bool"]), d) for _ in range(r.randrange(1, 4))]
            return op("concat(" + ", ".join("{}" for _ in kids) + ")", "str", *kids)
        if k in (6, 7):
            src = r.choice(["int", "dbl", "dec", "date", "ts", "bool", "dbl"])
            return op("CAST({} AS varchar)", "str", self.gen(src, d))
        if k == 8:
            return op("({} || {})", "str", self.gen("str", d),
                      self.gen(r.choice(["int", "dec", "dbl", "date", "ts"]), d))
        return self.common("str", d)

    def g_bool(self, d):
        r = self.rng
        k = r.randrange(12)
        if k < 3:
            fam = r.choice(["num", "num", "str", "date", "ts", "bool", "datets"])
            cmp = r.choice(["=", "<>", "<", "<=", ">", ">=", "!="])
            if fam == "num":
                a, b = self.num(d), self.num(d)
            elif fam == "datets":
                a, b = self.gen("date", d), self.gen("ts", d)
            else:
                a, b = self.gen(fam, d), self.gen(fam, d)
            return op(f"({{}} {cmp} {{}})", "bool", a, b)
        if k == 3:
            return op(r.choice(["({} AND {})", "({} OR {})"]), "bool", self.gen("bool", d),
                      self.gen("bool", d))
        if k == 4:
            return op("(NOT {})", "bool", self.gen("bool", d))
        if k == 5:
            t = r.choice(list(LITS))
            return op(r.choice(["({} IS NULL)", "({} IS NOT NULL)"]), "bool", self.gen(t, d))
        if k == 6:
            t = r.choice(["int", "dbl", "dec", "str", "date"])
            items = ", ".join(r.sample(LITS[t], 2) + (["NULL"] if r.random() < 0.2 else []))
            neg = r.choice(["", "NOT "])
            return op(f"({{}} {neg}IN ({items}))", "bool", self.gen(t, d))
        if k == 7:
            t = r.choice(["int", "dbl", "dec", "str", "date", "ts"])
            neg = r.choice(["", "NOT "])
            return op(f"({{}} {neg}BETWEEN {{}} AND {{}})", "bool", self.gen(t, d),
                      self.gen(t, min(d, 1)), self.gen(t, min(d, 1)))
        if k == 8:
            kw = r.choice(["LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"])
            return op(f"({{}} {kw} {r.choice(LIKE_PATS)})", "bool", self.gen("str", d))
        if k == 9:
            f = r.choice(["starts_with", "ends_with"])
            return op(f + "({}, {})", "bool", self.gen("str", d), leaf(r, "str"))
        if k == 10:
            return op(f"regexp_like({{}}, {esc(r.choice(REGEXES))})", "bool", self.gen("str", d))
        return self.common("bool", d)

    def g_date(self, d):
        if self.rng.random() < 0.4:
            return op("CAST({} AS date)", "date", self.gen("ts", d))
        return self.common("date", d)

    def g_ts(self, d):
        if self.rng.random() < 0.4:
            return op("CAST({} AS timestamp)", "ts", self.gen("date", d))
        return self.common("ts", d)


def simpler(node: Node) -> list[Node]:
    """Leaves that could stand in for a node of this type, simplest first."""
    return [Node(c, node.ty) for c in COLS_BY_TYPE[node.ty]] + [
        Node(f"({lit})" if lit.startswith("-") else lit, node.ty) for lit in LITS[node.ty][:3]
    ]
