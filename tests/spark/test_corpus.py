"""The semantics suite's corpus (tests/semantics/corpus.py, every expression form the
engine takes) through the Spark runner: each expression as a derive step over the corpus's
base rows, its values per row compared with the engine's, and an expression that stops the
engine (overflow, strict CAST, `% 0`) must stop the Spark run too, at the same line.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

import corpus
from engine import Session, etl_binary, spec_yaml
from etl_spark import local, transform

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "spark-corpus"
CHUNK = 60


@pytest.fixture(scope="module")
def sem():
    shutil.rmtree(WORK, ignore_errors=True)
    s = Session(corpus.base(), WORK / "engine")
    yield s
    s.close()


@pytest.fixture(scope="module")
def engine(sem):
    """Each corpus expression's outcome on the engine, as the semantics suite gets it."""
    exprs = [e for topic in corpus.CORPUS.values() for e in topic]
    return exprs, dict(zip(exprs, sem.engine(exprs)))


def _norm(v):
    # NaN's sign does not survive the JVM (README, "The Spark runner"): `-nan` is `nan`.
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v.replace("-nan", "nan") if isinstance(v, str) else v


def _spark(spark, sem: Session, exprs: list[str], tag: str):
    """(values per expression, None) or (None, error) of one Spark run."""
    d = WORK / "spark" / tag
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    spec = d / "spec.yaml"
    spec.write_text(spec_yaml(sem.base, exprs), encoding="utf-8")
    planned = subprocess.run([str(etl_binary()), "plan", "--spec", str(spec)],
                             capture_output=True, text=True)
    if planned.returncode != 0:
        return None, f"plan refused: {planned.stderr.strip()}"
    plan = json.loads(planned.stdout)
    transform.configure(spark, plan)
    try:
        local.run(spark, plan, str(sem.input), str(d / "out"))
    except transform.RecordError as e:
        return None, str(e)
    glob = str(d / "out" / "sem" / "*.parquet")
    types = {r[0]: r[1] for r in sem.con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({glob!r})").fetchall()}
    sel = [f'CAST("e{n}" AS TIMESTAMP)' if types[f"e{n}"].startswith("TIMESTAMP WITH")
           else f'"e{n}"' for n in range(len(exprs))]
    rows = sem.con.execute(
        f"SELECT {', '.join(['id', *sel])} FROM read_parquet({glob!r}) ORDER BY id").fetchall()
    return [[_norm(r[n + 1]) for r in rows] for n in range(len(exprs))], None


def _line(error: str) -> str | None:
    for word in error.split():
        if word.rstrip(":").isdigit():
            return word.rstrip(":")
    return None


def test_every_corpus_expression_gives_the_engines_values(spark, sem, engine):
    exprs, engine = engine
    ok = [e for e in exprs if engine[e].values is not None]
    findings = []
    for start in range(0, len(ok), CHUNK):
        chunk = ok[start:start + CHUNK]
        values, error = _spark(spark, sem, chunk, f"chunk{start}")
        if error:
            findings.append(f"chunk at {start} failed on Spark: {error}")
            continue
        for e, got in zip(chunk, values):
            want = [_norm(v) for v in engine[e].values]
            if got != want:
                diff = [(sem.ids[i], w, g) for i, (w, g) in enumerate(zip(want, got)) if w != g]
                findings.append(f"{e}: (id, engine, spark) {diff[:3]}")
    assert not findings, f"{len(findings)} of {len(ok)} expressions differ:\n" + "\n".join(findings)


def test_expressions_that_stop_the_engine_stop_spark_at_the_same_line(spark, sem, engine):
    exprs, engine = engine
    failing = [e for e in exprs if engine[e].values is None and not engine[e].refused]
    assert failing, "the corpus has expressions that stop the engine"
    findings = []
    for n, e in enumerate(failing):
        values, error = _spark(spark, sem, [e], f"fail{n}")
        if error is None:
            findings.append(f"{e}: the engine stopped ({engine[e].error}); Spark ran")
        elif _line(error) != _line(engine[e].error):
            findings.append(f"{e}: engine `{engine[e].error}`, Spark `{error}`")
    assert not findings, "\n".join(findings)
