//! Compiled steps, applied batch by batch. A step either maps the batch, or splits it
//! into rows kept and rows rejected (with a reason); the only other way a row leaves is
//! as a duplicate. That is what keeps `in = out + duplicates + quarantined` exact.

use std::io::Cursor;

use polars::prelude::*;
use polars_io::SerReader;
use polars_io::parquet::read::ParquetReader;

use crate::batch::RECORD_COLUMN;
use crate::chars::ClassReplace;
use crate::error::{EtlError, PolarsContext, SpecError};
use crate::hash::{SeenSet, row_hashes};
use crate::ordered::Ordered;
use crate::read::{self, Field, Record, RecordVisitor};
use crate::spec::{
    CaseSpec, DeriveExpr, ExtraColumns, FieldSpec, FillValue, JoinStep, PipelineSpec, Step,
};
use crate::types::{self, ColumnType};

/// Rows a step (or a quality rule) refused.
pub(crate) struct Rejected {
    /// The rows; only their record keys are read: quarantine shows the text as read.
    pub frame: DataFrame,
    /// Stable key for counting (`filter:non_negative_amount`).
    pub code: String,
    pub reasons: Reasons,
}

pub(crate) enum Reasons {
    Same(String),
    PerRow(Vec<String>),
}

/// What a batch went through.
#[derive(Default)]
pub(crate) struct Outcome {
    pub duplicates: u64,
    pub rejected: Vec<Rejected>,
}

/// Gives the bytes of a reference table named in a join step.
pub trait ReferenceLoader {
    /// `path` as written in the spec; the loader decides what it is relative to.
    fn load(&self, path: &str) -> Result<Vec<u8>, EtlError>;
}

enum Action {
    Dedup {
        columns: Option<Vec<PlSmallStr>>,
        seen: Ordered<SeenSet>,
    },
    FillNull(Vec<(String, FillValue)>),
    Filter {
        name: String,
        condition: String,
        expr: Expr,
    },
    /// A derived column; `sql` is the expression's text when it came from one.
    Derive {
        expr: Expr,
        sql: String,
    },
    /// A `regex_replace` whose pattern is one character class (see [`ClassReplace`]).
    ReplaceChars {
        from: String,
        column: String,
        replace: ClassReplace,
    },
    /// A `split` derive: piece `index` of `from` cut at `separator`, null past the last
    /// piece. One pass that copies one piece; polars' `split` builds a list of them all.
    SplitPart {
        from: String,
        column: String,
        separator: String,
        index: usize,
    },
    Join {
        reference: DataFrame,
        left_on: String,
        right_on: String,
    },
    Cast {
        column: String,
        to: ColumnType,
    },
}

pub(crate) struct CompiledStep {
    /// `steps[3] (filter)`: how errors name the step.
    label: String,
    line: Option<u64>,
    action: Action,
}

impl CompiledStep {
    pub fn spec_error(&self, message: impl Into<String>) -> SpecError {
        SpecError::at(self.line, self.label.clone(), message)
    }
}

pub(crate) fn compile(
    spec: &PipelineSpec,
    now_us: i64,
    loader: &dyn ReferenceLoader,
) -> Result<Vec<CompiledStep>, EtlError> {
    // The columns each step sees, with their types: expressions are typed against them.
    let mut scope: Vec<(String, ColumnType)> = spec
        .schema
        .iter()
        .map(|f| (f.value.name.clone(), f.value.ty))
        .collect();
    spec.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let line = Some(step.referenced.line()).filter(|l| *l > 0);
            let label = format!("steps[{i}].{}", step.value.kind());
            let action = match &step.value {
                Step::Deduplicate(d) => Action::Dedup {
                    columns: d
                        .columns
                        .as_ref()
                        .map(|c| c.iter().map(|s| s.as_str().into()).collect()),
                    seen: Ordered::new(SeenSet::new()),
                },
                Step::FillNull(values) => {
                    Action::FillNull(values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                }
                Step::Filter(f) => Action::Filter {
                    name: f.name.clone(),
                    condition: f.condition.clone(),
                    expr: condition(&f.condition, &scope, line, &format!("{label}.where"))?,
                },
                Step::Derive(d) => 'derive: {
                    let expr = match d.expr().map_err(|m| SpecError::at(line, &label, m))? {
                        DeriveExpr::RegexReplace(r) => {
                            set(&mut scope, &d.column, ColumnType::String);
                            if let Some(replace) = ClassReplace::compile(&r.pattern, &r.replacement)
                            {
                                break 'derive Action::ReplaceChars {
                                    from: r.from.clone(),
                                    column: d.column.clone(),
                                    replace,
                                };
                            }
                            col(r.from.as_str()).str().replace_all(
                                lit(r.pattern.clone()),
                                lit(r.replacement.clone()),
                                false,
                            )
                        }
                        DeriveExpr::Sql(text) => {
                            let field = format!("{label}.sql");
                            let c = crate::sql::compile(text, scope.as_slice())
                                .map_err(|e| crate::sql::spec_error(text, line, &field, e))?;
                            set(&mut scope, &d.column, c.ty);
                            break 'derive Action::Derive {
                                expr: c.expr.alias(d.column.as_str()),
                                sql: text.to_string(),
                            };
                        }
                        DeriveExpr::Case(c) => {
                            let e = case_expr(c, &scope, line, &label)?;
                            let ty = crate::validate::fill_value_type(&c.when[0].then);
                            set(&mut scope, &d.column, ty);
                            e
                        }
                        DeriveExpr::Split(s) => {
                            set(&mut scope, &d.column, ColumnType::String);
                            break 'derive Action::SplitPart {
                                from: s.from.clone(),
                                column: d.column.clone(),
                                separator: s.separator.clone(),
                                index: s.index,
                            };
                        }
                    };
                    Action::Derive {
                        expr: expr.alias(d.column.as_str()),
                        sql: String::new(),
                    }
                }
                Step::Join(j) => {
                    let join = load_reference(j, loader, line, &label)?;
                    if let Action::Join {
                        reference,
                        right_on,
                        ..
                    } = &join
                    {
                        for c in reference.columns() {
                            if c.name() != right_on.as_str() {
                                let ty = ColumnType::from_polars(c.dtype())
                                    .unwrap_or(ColumnType::String);
                                set(&mut scope, c.name(), ty);
                            }
                        }
                    }
                    join
                }
                Step::Cast(c) => {
                    set(&mut scope, &c.column, c.to);
                    Action::Cast {
                        column: c.column.clone(),
                        to: c.to,
                    }
                }
                Step::ProcessedAt(p) => {
                    set(&mut scope, &p.column, ColumnType::Timestamp);
                    Action::Derive {
                        expr: lit(now_us)
                            .cast(ColumnType::Timestamp.to_polars())
                            .alias(p.column.as_str()),
                        sql: String::new(),
                    }
                }
            };
            Ok(CompiledStep {
                label,
                line,
                action,
            })
        })
        .collect()
}

/// Sets a column's type in a step's scope (added, or replaced in place).
fn set(scope: &mut Vec<(String, ColumnType)>, name: &str, ty: ColumnType) {
    match scope.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = ty,
        None => scope.push((name.to_string(), ty)),
    }
}

/// A boolean SQL expression of a step, typed against the columns it sees.
fn condition(
    text: &str,
    scope: &[(String, ColumnType)],
    line: Option<u64>,
    field: &str,
) -> Result<Expr, EtlError> {
    Ok(crate::sql::compile_condition(text, scope)
        .map_err(|e| crate::sql::spec_error(text, line, field, e))?
        .expr)
}

fn case_expr(
    c: &CaseSpec,
    scope: &[(String, ColumnType)],
    line: Option<u64>,
    label: &str,
) -> Result<Expr, EtlError> {
    let cond = |j: usize| {
        let field = format!("{label}.case.when[{j}].if");
        condition(&c.when[j].condition, scope, line, &field)
    };
    let first = &c.when[0];
    let otherwise = match &c.otherwise {
        Some(v) => fill_lit(v),
        None => lit(NULL).cast(crate::validate::fill_value_type(&first.then).to_polars()),
    };
    let then = when(cond(0)?).then(fill_lit(&first.then));
    let Some((second, rest)) = c.when[1..].split_first() else {
        return Ok(then.otherwise(otherwise));
    };
    let mut chain = then.when(cond(1)?).then(fill_lit(&second.then));
    for (j, w) in rest.iter().enumerate() {
        chain = chain.when(cond(j + 2)?).then(fill_lit(&w.then));
    }
    Ok(chain.otherwise(otherwise))
}

fn fill_lit(v: &FillValue) -> Expr {
    match v {
        FillValue::Bool(b) => lit(*b),
        FillValue::Int(i) => lit(*i),
        FillValue::Float(f) => lit(*f),
        FillValue::Text(s) => lit(s.clone()),
    }
}

/// A fill value as a literal of the column's own type, so filling never changes it.
fn typed_fill(v: &FillValue, dtype: &DataType) -> Result<Expr, String> {
    let ty = ColumnType::from_polars(dtype);
    Ok(match (v, ty) {
        (FillValue::Text(s), Some(ColumnType::Date)) => {
            lit(types::parse_date(s, None)?).cast(DataType::Date)
        }
        (FillValue::Text(s), Some(ColumnType::Timestamp)) => {
            lit(types::parse_timestamp(s, None)?).cast(dtype.clone())
        }
        (FillValue::Text(_), Some(ColumnType::String))
        | (FillValue::Bool(_), Some(ColumnType::Boolean))
        | (
            FillValue::Int(_) | FillValue::Float(_),
            Some(ColumnType::Double | ColumnType::Decimal { .. }),
        )
        | (FillValue::Int(_), Some(ColumnType::Bigint)) => fill_lit(v).cast(dtype.clone()),
        _ => return Err(format!("fill value {v:?} does not fit a {dtype} column")),
    })
}

/// Loads a join's reference table and checks its key is unique: a duplicated key would
/// multiply input rows and break the row accounting.
fn load_reference(
    j: &JoinStep,
    loader: &dyn ReferenceLoader,
    line: Option<u64>,
    label: &str,
) -> Result<Action, EtlError> {
    let bytes = loader.load(&j.path)?;
    let lower = j.path.to_ascii_lowercase();
    let mut df = if lower.ends_with(".parquet") {
        ParquetReader::new(Cursor::new(bytes))
            .finish()
            .context(|| format!("{label}: reading reference {}", j.path))?
    } else {
        read_reference_csv(j, &bytes)?
    };
    let right_on = j.reference_on.clone().unwrap_or_else(|| j.on.clone());
    if df.column(&right_on).is_err() {
        return Err(SpecError::at(
            line,
            format!("{label}.reference_on"),
            format!("reference {} has no column `{right_on}`", j.path),
        )
        .into());
    }
    if let Some(keep) = &j.columns {
        let mut names: Vec<PlSmallStr> = vec![right_on.as_str().into()];
        for c in keep {
            if df.column(c).is_err() {
                return Err(SpecError::at(
                    line,
                    format!("{label}.columns"),
                    format!("reference {} has no column `{c}`", j.path),
                )
                .into());
            }
            if c != &right_on {
                names.push(c.as_str().into());
            }
        }
        df = df
            .select(names)
            .context(|| format!("{label}: selecting reference columns"))?;
    }
    let key = df.column(&right_on).context(|| label.to_string())?;
    let distinct = key
        .n_unique()
        .context(|| format!("{label}: checking reference keys"))?;
    if distinct != df.height() {
        return Err(SpecError::at(
            line,
            label,
            format!(
                "reference {} has duplicate values in key `{right_on}`; a join would duplicate rows",
                j.path
            ),
        )
        .into());
    }
    Ok(Action::Join {
        reference: df,
        left_on: j.on.clone(),
        right_on,
    })
}

/// A reference CSV, typed by the step's `schema` (other columns as strings).
fn read_reference_csv(j: &JoinStep, bytes: &[u8]) -> Result<DataFrame, EtlError> {
    // The header decides the columns; read it first to build an all-columns schema.
    let mut header_reader = csv::ReaderBuilder::new().from_reader(skip_bom(bytes));
    let header = header_reader
        .headers()
        .map_err(|e| crate::error::InputError::new(&j.path, e.to_string()).at_line(1))?
        .clone();
    let schema: Vec<FieldSpec> = header
        .iter()
        .map(|h| {
            j.schema
                .iter()
                .find(|f| f.name == h)
                .cloned()
                .unwrap_or(FieldSpec {
                    name: h.to_string(),
                    ty: ColumnType::String,
                    required: false,
                    format: None,
                })
        })
        .collect();
    struct Collect {
        typer: crate::batch::Typer,
        path: String,
    }
    impl RecordVisitor for Collect {
        fn record(&mut self, line: u64, record: &dyn Record) -> Result<(), EtlError> {
            self.typer.push(line, record).map_err(|r| {
                crate::error::InputError::new(&self.path, r.reason)
                    .at_line(line)
                    .into()
            })
        }
        fn malformed(&mut self, line: u64, _raw: &str, reason: String) -> Result<(), EtlError> {
            Err(crate::error::InputError::new(&self.path, reason)
                .at_line(line)
                .into())
        }
    }
    let mut collect = Collect {
        typer: crate::batch::Typer::new(&schema, &[], 1024),
        path: j.path.clone(),
    };
    let opts = read::ReadOptions {
        name: &j.path,
        schema: &schema,
        delimiter: b',',
        extra_columns: ExtraColumns::Drop,
    };
    let mut input: &[u8] = bytes;
    read::read_csv(&mut input, &opts, &mut collect)?;
    let mut df = collect
        .typer
        .finish()
        .context(|| format!("reading reference {}", j.path))?;
    df.drop_in_place(RECORD_COLUMN)
        .context(|| format!("reading reference {}", j.path))?;
    Ok(df)
}

fn skip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(b)
}

/// Sets `column` (added, or replaced in place) to `derive` of the text column `from`.
fn derive_text(
    mut df: DataFrame,
    from: &str,
    column: &str,
    derive: impl FnOnce(&StringChunked) -> StringChunked,
) -> PolarsResult<DataFrame> {
    let derived = derive(df.column(from)?.str()?);
    df.with_column(derived.with_name(column.into()).into_column())?;
    Ok(df)
}

/// Piece `index` of each value cut at `separator`; null past the last piece.
fn split_part(source: &StringChunked, separator: &str, index: usize) -> StringChunked {
    let mut chars = separator.chars();
    // A one-character separator is found with memchr, a longer one by substring search.
    match (chars.next(), chars.next()) {
        (Some(c), None) => source
            .iter()
            .map(|v| v.and_then(|s| s.split(c).nth(index)))
            .collect(),
        _ => source
            .iter()
            .map(|v| v.and_then(|s| s.split(separator).nth(index)))
            .collect(),
    }
}

/// Splits a frame by a mask; nulls in the mask count as false.
pub(crate) fn split(df: &DataFrame, mask: &BooleanChunked) -> PolarsResult<(DataFrame, DataFrame)> {
    let mask = if mask.null_count() > 0 {
        mask.fill_null_with_values(false)?
    } else {
        mask.clone()
    };
    Ok((df.filter(&mask)?, df.filter(&!&mask)?))
}

impl CompiledStep {
    /// Runs the step on batch number `batch` (input order; `None` for the dry run). Workers
    /// may call it on several batches at once: stateful steps take them in order.
    pub fn apply(
        &self,
        df: DataFrame,
        outcome: &mut Outcome,
        batch: Option<u64>,
    ) -> Result<DataFrame, EtlError> {
        let label = self.label.clone();
        let ctx = || label.clone();
        match &self.action {
            Action::Dedup { columns, seen } => {
                let names: Vec<PlSmallStr> = match columns {
                    Some(c) => c.clone(),
                    None => df
                        .get_column_names()
                        .into_iter()
                        .filter(|n| n.as_str() != RECORD_COLUMN)
                        .cloned()
                        .collect(),
                };
                // Hashing runs in parallel; only the lookups wait for this batch's turn.
                let hashes = row_hashes(&df, &names).context(ctx)?;
                let keep = seen
                    .in_turn(batch, |seen| seen.insert_all(&hashes))
                    .map_err(|_| EtlError::engine("another processing thread failed"))?;
                let keep = BooleanChunked::from_slice(PlSmallStr::EMPTY, &keep);
                let kept = df.filter(&keep).context(ctx)?;
                outcome.duplicates += (df.height() - kept.height()) as u64;
                Ok(kept)
            }
            Action::FillNull(values) => {
                let mut exprs = Vec::with_capacity(values.len());
                for (name, v) in values.iter() {
                    let dtype = df.column(name).context(ctx)?.dtype().clone();
                    let fill =
                        typed_fill(v, &dtype).map_err(|m| self_error(self.line, &label, m))?;
                    exprs.push(col(name.as_str()).fill_null(fill));
                }
                df.lazy().with_columns(exprs).collect().context(ctx)
            }
            Action::Derive { expr, sql } => {
                let eval = |df: DataFrame| df.lazy().with_column(expr.clone()).collect();
                eval(df.clone()).map_err(|e| self.evaluation_error(&df, eval, e, sql))
            }
            Action::ReplaceChars {
                from,
                column,
                replace,
            } => derive_text(df, from, column, |source| {
                source.apply_into_string_amortized(|text, out| replace.replace_into(text, out))
            })
            .context(ctx),
            Action::SplitPart {
                from,
                column,
                separator,
                index,
            } => derive_text(df, from, column, |source| {
                split_part(source, separator, *index)
            })
            .context(ctx),
            Action::Filter {
                name,
                condition,
                expr,
            } => {
                let eval =
                    |df: DataFrame| df.lazy().select([expr.clone().alias("__keep")]).collect();
                let mask =
                    eval(df.clone()).map_err(|e| self.evaluation_error(&df, eval, e, condition))?;
                let mask = mask
                    .column("__keep")
                    .and_then(|c| c.bool().cloned())
                    .context(|| format!("{label}: `{condition}` is not a boolean condition"))?;
                let (kept, rejected) = split(&df, &mask).context(ctx)?;
                if rejected.height() > 0 {
                    outcome.rejected.push(Rejected {
                        frame: rejected,
                        code: format!("filter:{name}"),
                        reasons: Reasons::Same(format!("filter {name}: `{condition}` is not true")),
                    });
                }
                Ok(kept)
            }
            Action::Join {
                reference,
                left_on,
                right_on,
            } => {
                let left_type = df.column(left_on).context(ctx)?.dtype().clone();
                let right = reference
                    .clone()
                    .lazy()
                    .with_column(col(right_on.as_str()).cast(left_type));
                let mut args = JoinArgs::new(JoinType::Left);
                args.maintain_order = MaintainOrderJoin::Left;
                df.lazy()
                    .join(
                        right,
                        [col(left_on.as_str())],
                        [col(right_on.as_str())],
                        args,
                    )
                    .collect()
                    .context(ctx)
            }
            Action::Cast { column, to } => cast_column(df, column, *to, outcome).context(ctx),
        }
    }
}

impl CompiledStep {
    /// The error of an expression that failed on `df`. A value SQL refuses (a CAST that
    /// does not convert, an overflow) is bad input: the record is found by evaluating ever
    /// shorter prefixes of the batch, and the error names its line and the value. Anything
    /// else is the engine's.
    fn evaluation_error(
        &self,
        df: &DataFrame,
        eval: impl Fn(DataFrame) -> PolarsResult<DataFrame>,
        e: PolarsError,
        sql: &str,
    ) -> EtlError {
        let Some(first) = crate::sql::refused_value(&e) else {
            return EtlError::Engine {
                context: self.label.clone(),
                source: e,
            };
        };
        // The shortest failing prefix ends at the first failing row: `hi` rows fail,
        // `lo` rows do not.
        let (mut lo, mut hi) = (0, df.height());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if eval(df.slice(0, mid)).is_err() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let row = hi.saturating_sub(1);
        let message = eval(df.slice(row as i64, 1))
            .err()
            .and_then(|e| crate::sql::refused_value(&e))
            .unwrap_or(first);
        // The row's record key; the worker, which holds the batch's records, turns it into
        // the line (RawRecords::locate).
        let key = df
            .column(RECORD_COLUMN)
            .ok()
            .and_then(|c| c.get(row).ok())
            .and_then(|v| v.extract::<u64>());
        let what = if sql.is_empty() {
            self.label.clone()
        } else {
            format!("{} `{sql}`", self.label)
        };
        let mut bad = crate::error::InputError::new("", format!("{what}: {message}"));
        bad.record = key;
        bad.into()
    }

    /// Batch `failed` will not take its turn at this step: workers waiting with later
    /// batches give up (`None`: all of them).
    pub fn abort_after(&self, failed: Option<u64>) {
        if let Action::Dedup { seen, .. } = &self.action {
            seen.abort_after(failed);
        }
    }
}

fn self_error(line: Option<u64>, label: &str, message: String) -> EtlError {
    SpecError::at(line, label, message).into()
}

/// Casts a column; rows whose value does not convert are rejected, never nulled.
fn cast_column(
    df: DataFrame,
    column: &str,
    to: ColumnType,
    outcome: &mut Outcome,
) -> PolarsResult<DataFrame> {
    let source = df.column(column)?.clone();
    let target = to.to_polars();
    if source.dtype() == &target {
        return Ok(df);
    }
    let (converted, failures): (Column, Vec<Option<String>>) =
        if source.dtype() == &DataType::String {
            // Text goes through the same parsers as input, with the same messages.
            let field = FieldSpec {
                name: column.to_string(),
                ty: to,
                required: false,
                format: None,
            };
            let ca = source.str()?;
            let mut typer = crate::batch::Typer::new(std::slice::from_ref(&field), &[], ca.len());
            let mut failures = Vec::with_capacity(ca.len());
            struct One<'a>(Option<&'a str>);
            impl Record for One<'_> {
                fn field(&self, _: usize) -> Result<Field<'_>, String> {
                    Ok(self.0.map_or(Field::Absent, Field::Text))
                }
            }
            for v in ca.iter() {
                match typer.push(0, &One(v)) {
                    Ok(()) => failures.push(None),
                    Err(r) => {
                        typer.push(0, &One(None)).ok();
                        failures.push(Some(r.reason));
                    }
                }
            }
            let typed = typer.finish()?;
            (typed.column(column)?.clone(), failures)
        } else {
            // The conversion of SQL's TRY_CAST (README "Casts"), so a cast step and an
            // expression agree; a value that does not convert comes back NULL.
            let from = ColumnType::from_polars(source.dtype()).ok_or_else(|| {
                PolarsError::ComputeError(format!("cannot cast a {} column", source.dtype()).into())
            })?;
            let cast = DataFrame::new(source.len(), vec![source.clone()])?
                .lazy()
                .select([crate::sql::try_cast(column, from, to)])
                .collect()?
                .column(column)?
                .clone();
            let failures = source
                .is_not_null()
                .iter()
                .zip(cast.is_null().iter())
                .zip(source.as_materialized_series().iter())
                .map(|((was, now), value)| {
                    (was.unwrap_or(false) && now.unwrap_or(false))
                        .then(|| format!("field '{column}': {value} cannot be cast to {to}"))
                })
                .collect();
            (cast, failures)
        };
    let ok: BooleanChunked = failures.iter().map(Option::is_none).collect();
    let mut df = df;
    df.with_column(converted.with_name(column.into()))?;
    if ok.all() {
        return Ok(df);
    }
    // Rejected rows are quarantined with the text that was read (see `raw`), so their
    // values here do not matter.
    let (kept, rejected) = split(&df, &ok)?;
    outcome.rejected.push(Rejected {
        frame: rejected,
        code: format!("invalid_cast:{column}"),
        reasons: Reasons::PerRow(failures.into_iter().flatten().collect()),
    });
    Ok(kept)
}
