"""Random well-typed expressions, engine against DuckDB, value by value.

SEED=n picks another expression set (CI uses the default), COUNT=n how many. A mismatch is
shrunk to the smallest subexpression, then its operands to columns or literals, that still
shows it, and printed with the first row it shows on.
"""

import os
import re

import conftest
import gen
from engine import Mismatch, Session, record_findings

SEED = int(os.environ.get("SEED", "17"))
COUNT = int(os.environ.get("COUNT", "3000"))
# Shrinking costs engine runs; past this many distinct causes the rest are only counted.
SHRINK_LIMIT = int(os.environ.get("SHRINK_LIMIT", "25"))


def _mismatches(s: Session, nodes: list[gen.Node]) -> list[Mismatch | None]:
    sqls = [n.sql for n in nodes]
    out = []
    for n, e, d in zip(nodes, s.engine(sqls), s.ducks(sqls)):
        ms = s.diff(n.sql, e, d)
        out.append(ms[0] if ms else None)
    return out


def cause(m: Mismatch) -> str:
    """What a mismatch has in common with others of its kind: an engine error's text
    without numbers, or the shape of the shrunk expression (operators and functions)."""
    if m.kind == "error" and m.engine.error:
        return "error:" + re.sub(r"\d+", "#", m.engine.error.split(":", 2)[-1])
    a, b = m.engine_value, m.duck_value
    if isinstance(a, str) and isinstance(b, str):
        # Text that differs in the same few characters ('nan' / '-nan' inside any text)
        # has one cause, whatever expression made it.
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        a, b = a[n:], b[n:]
        while a and b and a[-1] == b[-1]:
            a, b = a[:-1], b[:-1]
        if len(a) + len(b) <= 3:
            return f"text:{a!r}->{b!r}"
    shape = re.sub(r"'(?:[^']|'')*'|\b\d[\w.]*|\b[a-z]\w*\d\b", "_", m.expr)
    return f"{m.kind}:{shape}"


def shrink(s: Session, node: gen.Node, m: Mismatch) -> tuple[gen.Node, Mismatch]:
    # 1. The smallest subtree that disagrees in the same way.
    subs = sorted({t.sql: t for t in node.subtrees()}.values(), key=lambda t: (t.size(), t.sql))
    for t, tm in zip(subs, _mismatches(s, subs)):
        if tm is not None and tm.kind == m.kind:
            node, m = t, tm
            break
    # 2. Operands replaced by columns or literals while it still disagrees.
    for _ in range(6):
        cands = []
        for i, kid in enumerate(node.kids):
            for leaf in gen.simpler(kid):
                if leaf.sql != kid.sql:
                    kids = list(node.kids)
                    kids[i] = leaf
                    cands.append(node.build(*kids))
        cands = sorted({c.sql: c for c in cands}.values(), key=lambda c: (c.size(), len(c.sql)))
        better = next(
            ((c, cm) for c, cm in zip(cands, _mismatches(s, cands))
             if cm is not None and cm.kind == m.kind and c.size() <= node.size()),
            None,
        )
        if better is None or better[0].sql == node.sql:
            break
        node, m = better
    return node, m


def test_random_expressions_agree_with_duckdb():
    s = Session(gen.base())
    try:
        _check(s)
    finally:
        s.close()


def _check(s: Session):
    g = gen.Gen(SEED)
    nodes: dict[str, gen.Node] = {}
    while len(nodes) < COUNT:
        n = g.expr()
        nodes.setdefault(n.sql, n)
    nodes_l = list(nodes.values())
    sqls = [n.sql for n in nodes_l]
    bad = []
    both_errors = 0
    for n, e, d in zip(nodes_l, s.engine(sqls), s.ducks(sqls)):
        both_errors += e.error is not None and d.error is not None
        ms = s.diff(n.sql, e, d)
        if ms:
            bad.append((n, ms[0]))
    conftest.count(s, len(nodes_l))

    minimal: dict[str, Mismatch] = {}
    causes: set[str] = set()
    unshrunk = 0
    for n, m in bad:
        # One cause usually shows in many expressions: skip those holding a known minimum,
        # or failing with an engine error already seen.
        if any(t.sql in minimal for t in n.subtrees()) or cause(m) in causes:
            continue
        if len(minimal) >= SHRINK_LIMIT:
            unshrunk += 1
            continue
        small, sm = shrink(s, n, m)
        seen = cause(sm) in causes
        causes.update((cause(m), cause(sm)))
        if not seen:
            minimal.setdefault(small.sql, sm)

    summary = (
        f"SEED={SEED} COUNT={len(nodes_l)} over {len(s.ids)} rows: {len(bad)} expressions "
        f"disagree ({len(minimal)} minimal examples shown, {unshrunk} more not shrunk); "
        f"{both_errors} errored on both sides."
    )
    record_findings("random", summary, list(minimal.values()))
    conftest.NOTES.append(f"random: {summary}")
    assert not bad, summary + "\n\n" + "\n\n".join(m.describe() for m in minimal.values())
