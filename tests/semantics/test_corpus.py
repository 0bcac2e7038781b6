"""The corpus, evaluated by the engine and by DuckDB over the same typed rows."""

import re

import pytest

import conftest
import corpus
from engine import KNOWN_HITS, REPO, Session, family, record_findings


@pytest.fixture(scope="module")
def results():
    s = Session(corpus.base())
    exprs = [e for topic in corpus.CORPUS.values() for e in topic]
    # Expressions meant to error run one per engine run; the rest share runs.
    alone = set(corpus.CORPUS["errors"] + corpus.CORPUS["hugeint"])
    rest = [e for e in exprs if e not in alone]
    eng = dict(zip(rest, s.engine(rest)))
    eng.update(zip(sorted(alone), s.engine(sorted(alone), chunk=1)))
    duck = dict(zip(exprs, s.ducks(exprs)))
    by_topic = {
        topic: [m for e in es for m in s.diff(e, eng[e], duck[e])]
        for topic, es in corpus.CORPUS.items()
    }
    found = [m for ms in by_topic.values() for m in ms]
    record_findings(
        "corpus",
        f"{len(exprs)} expressions x {len(s.ids)} rows; {len(found)} mismatches.",
        found,
    )
    conftest.count(s, len(exprs))
    conftest.NOTES.append(f"corpus: {len(exprs)} expressions x {len(s.ids)} rows, "
                          f"{len(found)} mismatches")
    yield s, eng, duck, by_topic
    s.close()


@pytest.mark.parametrize("topic", list(corpus.CORPUS))
def test_topic_agrees_with_duckdb(results, topic):
    mismatches = results[3][topic]
    assert not mismatches, f"{len(mismatches)} mismatches:\n\n" + "\n\n".join(
        m.describe() for m in mismatches
    )


@pytest.mark.parametrize("expr", list(corpus.NARROWING))
def test_decimal_product_keeps_its_precision(results, expr):
    s, _, _, _ = results
    eng = s.engine([expr])[0]
    widened = s.duck_sql(corpus.NARROWING[expr])
    mismatches = s.diff(expr, eng, widened)
    assert not mismatches, "\n\n".join(m.describe() for m in mismatches)


def test_narrowing_topic_overflows_in_duckdb(results):
    s, _, _, _ = results
    for expr in ("m * m", "m * m * 10"):
        err = s.duck(expr).error or ""
        assert "Overflow in multiplication of DECIMAL(18)" in err, (expr, err)


def test_error_topic_errors_in_duckdb(results):
    # The "errors" topic claims every expression errors on some row; check the reference
    # really does, so an engine error there is agreement and not an accident.
    _, _, duck, _ = results
    ok = [e for e in corpus.CORPUS["errors"] if duck[e].error is None]
    assert not ok, f"DuckDB does not error on: {ok}"


def test_hugeint_topic_is_the_known_difference(results):
    _, eng, duck, _ = results
    for e in corpus.CORPUS["hugeint"]:
        assert duck[e].error is None and duck[e].type == "HUGEINT", (e, duck[e])
        assert eng[e].error is not None, f"engine gives a value for {e}: {eng[e].values}"


def test_other_topics_run_in_duckdb(results):
    # Outside "errors" the corpus exercises values: an expression DuckDB cannot evaluate
    # on every row would compare nothing but the error.
    _, _, duck, _ = results
    bad = [
        (e, duck[e].error)
        for topic, es in corpus.CORPUS.items()
        if topic not in ("errors", "text_casts")
        for e in es
        if duck[e].error is not None
    ]
    assert not bad, "\n".join(f"{e}: {err}" for e, err in bad)


def test_corpus_covers_readme_reference():
    # Every function, keyword and cast type README's expression reference names appears in
    # the corpus, so the corpus follows the reference as it grows.
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("**Expressions**")
    ref = text[start : text.index("**Quality rules**", start)]
    names = set()
    for code in re.findall(r"`([^`]+)`", ref):
        code = re.sub(r"'(?:[^']|'')*'", "''", code)
        names.update(f.lower() for f in re.findall(r"\b([a-z_]+)\(", code))
        names.update(k.lower() for k in re.findall(r"\b[A-Z]{2,}(?:_[A-Z]+)*\b", code))
        if re.fullmatch(r"[a-z_]+", code):
            names.add(code)
    # Words in backticks that are not expression syntax: spec keys, values, prose symbols.
    names -= {"_", "e", "if", "inf", "max", "n", "name", "nan", "sql", "start", "where", "x"}
    words = {
        w.lower()
        for es in corpus.CORPUS.values()
        for e in es
        for w in re.findall(r"[A-Za-z_]+", e)
    }
    missing = sorted(names - words)
    assert not missing, f"README names these but the corpus never uses them: {missing}"


def test_refused_at_load(results):
    s = results[0]
    got = s.engine(corpus.REFUSED, chunk=1)
    ran = [(e, o.error or "ran") for e, o in zip(corpus.REFUSED, got) if not o.refused]
    assert not ran, "not refused at load (exit 3):\n" + "\n".join(f"{e}: {r}" for e, r in ran)


def test_corpus_covers_every_type(results):
    s, eng, duck, _ = results
    families = {family(d.type) for d in duck.values() if d.type}
    want = {"bigint", "double", "string", "boolean", "date", "timestamp"}
    assert want <= families, want - families
    assert any(isinstance(f, tuple) for f in families), "no decimal result in the corpus"


def test_every_known_difference_shows_in_the_corpus(results):
    # An entry nothing needs any more should go (from README too); the narrowing entry is
    # met by the NARROWING expressions, which run in their own test.
    s, eng, _, _ = results
    for expr in corpus.NARROWING:
        s.diff(expr, s.engine([expr])[0], s.duck(expr))
    unused = [name for name, hits in KNOWN_HITS.items() if not hits]
    assert not unused, f"known differences the corpus never meets: {unused}"
