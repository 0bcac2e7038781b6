//! Data quality rules, named after Glue Data Quality's DQDL rule types. Row-level rules
//! are decided per row (and may quarantine failing rows); dataset-level rules are
//! accumulated over the batches and decided at the end.

use polars::prelude::*;
use serde::Serialize;

use crate::error::{EtlError, PolarsContext};
use crate::hash::{SeenSet, column_hashes};
use crate::spec::{RuleAction, RuleKind, RuleSpec};
use crate::steps::{Reasons, Rejected, split};
use crate::validate::parse_age;

/// A rule's verdict, as the manifest reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleResult {
    /// The rule in DQDL-like words: `ColumnValues "email" matches "..."`.
    pub rule: String,
    pub kind: RuleKind,
    pub column: Option<String>,
    pub action: RuleAction,
    /// Measured value: a share of rows (0..1) or, for RowCount, the count.
    pub actual: f64,
    /// What the rule requires of `actual` (a minimum; RowCount: see `rule`).
    pub required: f64,
    pub passed: bool,
    /// Rows that failed a row-level rule.
    pub failing_rows: u64,
    pub evaluated_rows: u64,
}

/// All rules' verdicts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QualityReport {
    /// Share of rules passed (1 when there are none).
    pub score: f64,
    pub min_score: Option<f64>,
    /// No rule with action `fail` failed.
    pub passed: bool,
    /// The score is below `min_score`, or an `alert` rule failed.
    pub alert: bool,
    pub rules: Vec<RuleResult>,
}

struct Rule {
    spec: RuleSpec,
    action: RuleAction,
    description: String,
    /// Row-level rules: the pass condition.
    predicate: Option<Expr>,
    evaluated: u64,
    passing: u64,
    /// Uniqueness: hashes seen, and how many values were already seen.
    seen: SeenSet,
    repeats: u64,
    max_age_us: i64,
}

/// A batch's row-level rule counts: (rule, rows evaluated, rows passing).
#[derive(Default)]
pub(crate) struct Tally {
    rows: Vec<(usize, u64, u64)>,
}

pub(crate) struct Quality {
    rules: Vec<Rule>,
    min_score: Option<f64>,
    now_us: i64,
}

impl Quality {
    pub fn new(rules: &[RuleSpec], min_score: Option<f64>, now_us: i64) -> Self {
        let rules = rules
            .iter()
            .map(|r| {
                let action = r.action.unwrap_or(if r.rule.is_row_level() {
                    RuleAction::Quarantine
                } else {
                    RuleAction::Alert
                });
                Rule {
                    predicate: row_predicate(r),
                    description: describe(r),
                    action,
                    spec: r.clone(),
                    evaluated: 0,
                    passing: 0,
                    seen: SeenSet::new(),
                    repeats: 0,
                    max_age_us: r
                        .max_age
                        .as_deref()
                        .and_then(|a| parse_age(a).ok())
                        .unwrap_or(0),
                }
            })
            .collect();
        Self {
            rules,
            min_score,
            now_us,
        }
    }

    /// Evaluates row-level rules on a batch and removes rows failing a `quarantine` rule
    /// (reason: the first rule they fail). Workers call it in parallel; what it counted
    /// goes to [`Quality::add`] with the rows kept.
    pub fn check_batch(
        &self,
        df: DataFrame,
        rejected: &mut Vec<Rejected>,
    ) -> Result<(DataFrame, Tally), EtlError> {
        let mut tally = Tally::default();
        let row_rules: Vec<(usize, Expr)> = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.predicate
                    .clone()
                    .map(|p| (i, p.alias(format!("__rule{i}"))))
            })
            .collect();
        let mut df = df;
        if !row_rules.is_empty() && df.height() > 0 {
            let masks = df
                .clone()
                .lazy()
                .select(row_rules.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>())
                .collect()
                .context(|| "evaluating quality rules".to_string())?;
            let mut quarantined = BooleanChunked::full("q".into(), false, df.height());
            for (i, _) in &row_rules {
                let mask = masks
                    .column(&format!("__rule{i}"))
                    .and_then(|c| c.bool().cloned())
                    .and_then(|m| m.fill_null_with_values(true))
                    .context(|| self.rules[*i].description.clone())?;
                let rule = &self.rules[*i];
                tally
                    .rows
                    .push((*i, df.height() as u64, mask.sum().unwrap_or(0) as u64));
                if rule.action == RuleAction::Quarantine {
                    // Rows already taken by an earlier rule keep that rule as reason.
                    let fails_here = &(!&mask) & &(!&quarantined);
                    if fails_here.any() {
                        rejected.push(Rejected {
                            frame: df
                                .filter(&fails_here)
                                .context(|| rule.description.clone())?,
                            code: format!(
                                "rule:{:?}:{}",
                                rule.spec.rule,
                                rule.spec.column.as_deref().unwrap_or("")
                            ),
                            reasons: Reasons::Same(format!("failed rule {}", rule.description)),
                        });
                        quarantined = &quarantined | &fails_here;
                    }
                }
            }
            if quarantined.any() {
                df = split(&df, &!&quarantined)
                    .context(|| "quarantining rule failures".to_string())?
                    .0;
            }
        }
        Ok((df, tally))
    }

    /// Adds a batch's row-rule counts and feeds dataset-level rules the rows it kept.
    /// Every count is a sum, so batches may come in any order.
    pub fn add(&mut self, tally: Tally, kept: &DataFrame) -> Result<(), EtlError> {
        for (i, evaluated, passing) in tally.rows {
            self.rules[i].evaluated += evaluated;
            self.rules[i].passing += passing;
        }
        self.accumulate(kept)
    }

    fn accumulate(&mut self, df: &DataFrame) -> Result<(), EtlError> {
        let height = df.height() as u64;
        for rule in &mut self.rules {
            if rule.predicate.is_some() || height == 0 {
                continue;
            }
            let Some(name) = rule.spec.column.as_deref() else {
                continue;
            };
            let Ok(column) = df.column(name) else {
                continue;
            };
            match rule.spec.rule {
                RuleKind::Completeness => {
                    rule.evaluated += height;
                    rule.passing += height - column.null_count() as u64;
                }
                RuleKind::Uniqueness | RuleKind::IsUnique => {
                    let hashes =
                        column_hashes(&column.drop_nulls()).context(|| rule.description.clone())?;
                    let new = rule.seen.insert_all(&hashes);
                    rule.evaluated += new.len() as u64;
                    rule.repeats += new.iter().filter(|&&n| !n).count() as u64;
                }
                RuleKind::DataFreshness => {
                    let cutoff = self.now_us - rule.max_age_us;
                    let us = column
                        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                        .and_then(|c| c.to_physical_repr().i64().cloned())
                        .context(|| rule.description.clone())?;
                    rule.evaluated += height;
                    rule.passing +=
                        us.iter().filter(|v| v.is_some_and(|t| t >= cutoff)).count() as u64;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Decides every rule. `rows_out` is what was written; `columns` the input's and the
    /// output's column names (for ColumnExists).
    pub fn finish(self, rows_out: u64, columns: &[String]) -> QualityReport {
        let mut results = Vec::with_capacity(self.rules.len());
        for rule in self.rules {
            let threshold = rule.spec.threshold.unwrap_or(1.0);
            let share = |pass: u64, of: u64| {
                if of == 0 {
                    1.0
                } else {
                    pass as f64 / of as f64
                }
            };
            let (actual, required, passed, failing) = match rule.spec.rule {
                RuleKind::IsComplete
                | RuleKind::ColumnValues
                | RuleKind::Completeness
                | RuleKind::DataFreshness => {
                    let actual = share(rule.passing, rule.evaluated);
                    (
                        actual,
                        threshold,
                        actual >= threshold,
                        rule.evaluated - rule.passing,
                    )
                }
                RuleKind::IsUnique | RuleKind::Uniqueness => {
                    let actual = share(rule.evaluated - rule.repeats, rule.evaluated);
                    let required = if rule.spec.rule == RuleKind::IsUnique {
                        1.0
                    } else {
                        threshold
                    };
                    (actual, required, actual >= required, 0)
                }
                RuleKind::ColumnExists => {
                    let present = rule
                        .spec
                        .column
                        .as_ref()
                        .is_some_and(|c| columns.contains(c));
                    (f64::from(u8::from(present)), 1.0, present, 0)
                }
                RuleKind::RowCount => {
                    let n = rows_out;
                    let ok = rule.spec.min.is_none_or(|m| n >= m)
                        && rule.spec.max.is_none_or(|m| n <= m);
                    (n as f64, rule.spec.min.unwrap_or(0) as f64, ok, 0)
                }
            };
            let evaluated = match rule.spec.rule {
                RuleKind::RowCount | RuleKind::ColumnExists => rows_out,
                _ => rule.evaluated,
            };
            results.push(RuleResult {
                rule: rule.description,
                kind: rule.spec.rule,
                column: rule.spec.column,
                action: rule.action,
                actual,
                required,
                passed,
                failing_rows: failing,
                evaluated_rows: evaluated,
            });
        }
        let passed_rules = results.iter().filter(|r| r.passed).count();
        let score = if results.is_empty() {
            1.0
        } else {
            passed_rules as f64 / results.len() as f64
        };
        let passed = results
            .iter()
            .all(|r| r.passed || r.action != RuleAction::Fail);
        let alert = self.min_score.is_some_and(|m| score < m)
            || results
                .iter()
                .any(|r| !r.passed && r.action == RuleAction::Alert);
        QualityReport {
            score,
            min_score: self.min_score,
            passed,
            alert,
            rules: results,
        }
    }
}

/// The per-row pass condition of row-level rules. Nulls pass ColumnValues (completeness
/// is its own rule), as in DQDL.
fn row_predicate(r: &RuleSpec) -> Option<Expr> {
    let c = col(r.column.as_deref()?);
    match r.rule {
        RuleKind::IsComplete => Some(c.is_not_null()),
        RuleKind::ColumnValues => {
            if let Some(re) = &r.matches {
                // DQDL `matches` is a whole-value match.
                Some(
                    c.cast(DataType::String)
                        .str()
                        .contains(lit(format!("^(?:{re})$")), true),
                )
            } else if let Some([lo, hi]) = r.between {
                let v = c.cast(DataType::Float64);
                Some(v.clone().gt_eq(lit(lo)).and(v.lt_eq(lit(hi))))
            } else {
                let allowed = Series::new("allowed".into(), r.allowed.clone().unwrap_or_default());
                Some(
                    c.cast(DataType::String)
                        .is_in(lit(allowed).implode(false), false),
                )
            }
        }
        _ => None,
    }
}

pub(crate) fn describe(r: &RuleSpec) -> String {
    let c = r.column.as_deref().unwrap_or("");
    let with_threshold = |s: String| match r.threshold {
        Some(t) => format!("{s} with threshold >= {t}"),
        None => s,
    };
    match r.rule {
        RuleKind::IsComplete => format!("IsComplete \"{c}\""),
        RuleKind::Completeness => format!("Completeness \"{c}\" >= {}", r.threshold.unwrap_or(1.0)),
        RuleKind::IsUnique => format!("IsUnique \"{c}\""),
        RuleKind::Uniqueness => format!("Uniqueness \"{c}\" >= {}", r.threshold.unwrap_or(1.0)),
        RuleKind::ColumnExists => format!("ColumnExists \"{c}\""),
        RuleKind::RowCount => match (r.min, r.max) {
            (Some(lo), Some(hi)) => format!("RowCount between {lo} and {hi}"),
            (Some(lo), None) => format!("RowCount >= {lo}"),
            (None, Some(hi)) => format!("RowCount <= {hi}"),
            (None, None) => "RowCount".into(),
        },
        RuleKind::DataFreshness => format!(
            "DataFreshness \"{c}\" <= {}",
            r.max_age.as_deref().unwrap_or("?")
        ),
        RuleKind::ColumnValues => with_threshold(if let Some(re) = &r.matches {
            format!("ColumnValues \"{c}\" matches \"{re}\"")
        } else if let Some([lo, hi]) = r.between {
            format!("ColumnValues \"{c}\" between {lo} and {hi}")
        } else {
            format!(
                "ColumnValues \"{c}\" in [{}]",
                r.allowed.as_deref().unwrap_or_default().join(", ")
            )
        }),
    }
}
