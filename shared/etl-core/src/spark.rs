//! A spec compiled for the Spark runner (`etl plan --target spark`): the same checked spec
//! and typed expression plans the polars engine runs, with every expression emitted as
//! Spark SQL text ([`crate::sql::spark`]). The runner (`infra/glue/etl_spark/`) executes the
//! plan as written and decides nothing of the spec's meaning itself.
//!
//! What the runner cannot run is refused here, as a spec error naming the field, so a
//! spec fails when it is checked rather than when its data arrives.

use serde_json::{Value as Json, json};

use crate::error::SpecError;
use crate::quality::describe;
use crate::spec::{DeriveExpr, FillValue, PipelineSpec, RuleAction, RuleKind, Step};
use crate::sql::plan::{Node, Typed, Value};
use crate::sql::spark as emit;
use crate::sql::{check, parse, spec_error};
use crate::types::{self, ColumnType};

/// The plan format's version; the runner refuses others.
pub const PLAN_VERSION: u32 = 1;

/// Compiles a checked spec for the Spark runner.
pub fn spark_plan(spec: &PipelineSpec) -> Result<Json, SpecError> {
    spark_plan_inner(spec).map_err(|mut e| {
        e.file.clone_from(&spec.file);
        e
    })
}

fn spark_plan_inner(spec: &PipelineSpec) -> Result<Json, SpecError> {
    let mut scope: Vec<(String, ColumnType)> = Vec::new();
    let mut schema = Vec::with_capacity(spec.schema.len());
    for (i, f) in spec.schema.iter().enumerate() {
        let line = Some(f.referenced.line()).filter(|l| *l > 0);
        let f = &f.value;
        if let Some(fmt) = &f.format {
            check_format(fmt).map_err(|m| SpecError::at(line, format!("schema[{i}].format"), m))?;
        }
        scope.push((f.name.clone(), f.ty));
        schema.push(json!({
            "name": f.name,
            "type": emit::type_name(f.ty),
            "required": f.required,
            "format": f.format,
            "parse": emit::parse_column(&f.name, f.ty, f.format.as_deref()),
        }));
    }
    let mut steps = Vec::with_capacity(spec.steps.len());
    for (i, step) in spec.steps.iter().enumerate() {
        let line = Some(step.referenced.line()).filter(|l| *l > 0);
        let label = format!("steps[{i}].{}", step.value.kind());
        steps.push(compile_step(&step.value, &label, line, &mut scope)?);
    }
    let rules = spec
        .quality
        .rules
        .iter()
        .map(|r| {
            let r = &r.value;
            let action = r.action.unwrap_or(if r.rule.is_row_level() {
                RuleAction::Quarantine
            } else {
                RuleAction::Alert
            });
            let column_type = r
                .column
                .as_deref()
                .and_then(|c| scope.iter().find(|(n, _)| n == c).map(|(_, t)| *t));
            json!({
                "rule": r.rule,
                "description": describe(r),
                "column": r.column,
                "threshold": r.threshold,
                "min": r.min,
                "max": r.max,
                "max_age_us": r.max_age.as_deref().map(crate::validate::parse_age).transpose().ok().flatten(),
                "action": action,
                "code": format!("rule:{:?}:{}", r.rule, r.column.as_deref().unwrap_or("")),
                "reason": format!("failed rule {}", describe(r)),
                "pass_sql": row_predicate(r, column_type),
            })
        })
        .collect::<Vec<_>>();
    let udfs: serde_json::Map<String, Json> = emit::UDFS
        .iter()
        .map(|(n, t)| ((*n).to_string(), json!(t)))
        .collect();
    Ok(json!({
        "version": PLAN_VERSION,
        "target": "spark",
        "dataset": spec.name,
        "spec_file": spec.file,
        "spark_conf": {
            "spark.sql.ansi.enabled": "true",
            "spark.sql.decimalOperations.allowPrecisionLoss": "false",
            "spark.sql.session.timeZone": "UTC",
        },
        "udfs": udfs,
        "source": {
            "prefix": spec.source.prefix,
            "format": spec.source.format,
            "delimiter": spec.source.delimiter.map(String::from),
            "null_values": spec.source.null_values,
            "extra_columns": spec.source.extra_columns,
            "max_record_bytes": spec.source.max_record_bytes,
            "max_decompressed_bytes": spec.source.max_decompressed_bytes,
            "max_compression_ratio": spec.source.max_compression_ratio,
        },
        "schema": schema,
        "steps": steps,
        "quality": {"min_score": spec.quality.min_score, "rules": rules},
        // With the engine's manifest names for each type (polars' and Glue's), so the
        // Spark runner's manifest and catalog table are the engine's.
        "columns": scope
            .iter()
            .map(|(n, t)| {
                let dtype = t.to_polars();
                json!({
                    "name": n,
                    "type": emit::type_name(*t),
                    "dtype": dtype.to_string(),
                    "glue_type": types::glue_type(&dtype).unwrap_or_else(|| "string".into()),
                })
            })
            .collect::<Vec<_>>(),
        "output": {
            "partition_by": spec.output.partition_by,
            // How the engine names partition directories (write.rs), so the runner names
            // them alike and refuses what the engine refuses.
            "partition": {
                "escape": crate::write::escaped_chars(),
                "null": crate::write::NULL_PARTITION,
                "max_dir_bytes": crate::write::MAX_PARTITION_DIR_BYTES,
                "max_partitions": crate::write::MAX_PARTITIONS,
            },
            "compression": spec.output.compression,
            "row_group_size": spec.output.row_group_size,
        },
    }))
}

fn set(scope: &mut Vec<(String, ColumnType)>, name: &str, ty: ColumnType) {
    match scope.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = ty,
        None => scope.push((name.to_string(), ty)),
    }
}

fn type_of(scope: &[(String, ColumnType)], name: &str) -> Option<ColumnType> {
    scope.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
}

fn expression(
    text: &str,
    scope: &[(String, ColumnType)],
    line: Option<u64>,
    field: &str,
    condition: bool,
) -> Result<Typed, SpecError> {
    let ast = parse::parse(text).map_err(|e| spec_error(text, line, field, e))?;
    let plan = if condition {
        check::check_condition(&ast, scope)
    } else {
        check::check(&ast, scope)
    };
    plan.map_err(|e| spec_error(text, line, field, e))
}

fn compile_step(
    step: &Step,
    label: &str,
    line: Option<u64>,
    scope: &mut Vec<(String, ColumnType)>,
) -> Result<Json, SpecError> {
    Ok(match step {
        Step::Deduplicate(d) => {
            json!({"kind": "deduplicate", "label": label, "columns": d.columns})
        }
        Step::FillNull(values) => {
            let mut fills = serde_json::Map::new();
            for (name, v) in values {
                let ty = type_of(scope, name).ok_or_else(|| {
                    SpecError::at(line, format!("{label}.{name}"), "unknown column")
                })?;
                let sql = fill_literal(v, ty)
                    .map_err(|m| SpecError::at(line, format!("{label}.{name}"), m))?;
                fills.insert(name.clone(), json!(sql));
            }
            json!({"kind": "fill_null", "label": label, "values": fills})
        }
        Step::Filter(f) => {
            let field = format!("{label}.where");
            let plan = expression(&f.condition, scope, line, &field, true)?;
            json!({
                "kind": "filter",
                "label": label,
                "name": f.name,
                "can_fail": plan.can_fail(),
                "sql": emit::emit(&plan),
                "text": f.condition,
                "code": format!("filter:{}", f.name),
                "reason": format!("filter {}: `{}` is not true", f.name, f.condition),
            })
        }
        Step::Derive(d) => {
            let how = d.expr().map_err(|m| SpecError::at(line, label, m))?;
            let mut can_fail = false;
            let (sql, ty, text) = match how {
                DeriveExpr::Sql(text) => {
                    let plan = expression(text, scope, line, &format!("{label}.sql"), false)?;
                    can_fail = plan.can_fail();
                    (emit::emit(&plan), plan.ty, text.to_string())
                }
                DeriveExpr::Case(c) => {
                    let ty = crate::validate::fill_value_type(&c.when[0].then);
                    let mut out = String::from("CASE");
                    for (j, w) in c.when.iter().enumerate() {
                        let field = format!("{label}.case.when[{j}].if");
                        let cond = expression(&w.condition, scope, line, &field, true)?;
                        can_fail |= cond.can_fail();
                        out.push_str(&format!(
                            " WHEN {} THEN {}",
                            emit::emit(&cond),
                            value_literal(&w.then, ty)
                        ));
                    }
                    let otherwise = c
                        .otherwise
                        .as_ref()
                        .map_or_else(|| emit::typed_null(ty), |v| value_literal(v, ty));
                    out.push_str(&format!(" ELSE {otherwise} END"));
                    (out, ty, String::new())
                }
                DeriveExpr::Split(s) => {
                    let index = i32::try_from(s.index).map_err(|_| {
                        SpecError::at(line, format!("{label}.split.index"), "too large")
                    })?;
                    let sql = format!(
                        "get(split({}, {}, -1), {index})",
                        emit::column(&s.from),
                        emit::string(&regex_literal(&s.separator))
                    );
                    (sql, ColumnType::String, String::new())
                }
                DeriveExpr::RegexReplace(r) => {
                    if r.replacement.contains(['$', '\\']) {
                        return Err(SpecError::at(
                            line,
                            format!("{label}.regex_replace.replacement"),
                            "the Spark runner takes a replacement without `$` or `\\` (Java \
                             and Rust read group references differently)",
                        ));
                    }
                    let sql = format!(
                        "regexp_replace({}, {}, {})",
                        emit::column(&r.from),
                        emit::string(&r.pattern),
                        emit::string(&r.replacement)
                    );
                    (sql, ColumnType::String, String::new())
                }
            };
            set(scope, &d.column, ty);
            json!({
                "kind": "derive",
                "label": label,
                "column": d.column,
                "type": emit::type_name(ty),
                "can_fail": can_fail,
                "sql": sql,
                "text": text,
            })
        }
        Step::Join(_) => {
            return Err(SpecError::at(
                line,
                label,
                "the Spark runner does not run joins yet; use engine lambda for this dataset",
            ));
        }
        Step::Cast(c) => {
            let from = type_of(scope, &c.column)
                .ok_or_else(|| SpecError::at(line, format!("{label}.column"), "unknown column"))?;
            let sql = if from == ColumnType::String {
                emit::parse_column(&c.column, c.to, None)
            } else {
                let source = Typed::new(from, Node::Column(c.column.clone()));
                emit::emit(&Typed::new(
                    c.to,
                    Node::Cast {
                        expr: Box::new(source),
                        strict: false,
                    },
                ))
            };
            set(scope, &c.column, c.to);
            json!({
                "kind": "cast",
                "label": label,
                "column": c.column,
                "from": emit::type_name(from),
                "to": emit::type_name(c.to),
                "sql": sql,
                "code": format!("invalid_cast:{}", c.column),
            })
        }
        Step::ProcessedAt(p) => {
            set(scope, &p.column, ColumnType::Timestamp);
            json!({"kind": "processed_at", "label": label, "column": p.column})
        }
    })
}

/// A `fill_null` value as a literal of the column's type (the polars engine's rule).
fn fill_literal(v: &FillValue, ty: ColumnType) -> Result<String, String> {
    Ok(match (v, ty) {
        (FillValue::Text(s), ColumnType::Date) => {
            emit::literal(&Value::Date(types::parse_date(s, None)?), ty)
        }
        (FillValue::Text(s), ColumnType::Timestamp) => {
            emit::literal(&Value::Timestamp(types::parse_timestamp(s, None)?), ty)
        }
        (FillValue::Text(s), ColumnType::String) => emit::string(s),
        (FillValue::Bool(b), ColumnType::Boolean) => emit::literal(&Value::Bool(*b), ty),
        (FillValue::Int(i), ColumnType::Bigint) => emit::literal(&Value::Int(*i), ty),
        #[allow(clippy::cast_precision_loss)]
        (FillValue::Int(i), ColumnType::Double) => emit::double(*i as f64),
        (FillValue::Float(f), ColumnType::Double) => emit::double(*f),
        (FillValue::Int(i), ColumnType::Decimal { .. }) => {
            format!("CAST('{i}' AS {})", emit::type_name(ty))
        }
        (FillValue::Float(f), ColumnType::Decimal { .. }) => {
            format!("CAST({} AS {})", emit::double(*f), emit::type_name(ty))
        }
        _ => return Err(format!("fill value {v:?} does not fit a {ty} column")),
    })
}

/// A `case` derive's value as a literal of the derived column's type.
fn value_literal(v: &FillValue, ty: ColumnType) -> String {
    let text = match v {
        FillValue::Bool(b) => emit::literal(&Value::Bool(*b), ColumnType::Boolean),
        FillValue::Int(i) => emit::literal(&Value::Int(*i), ColumnType::Bigint),
        FillValue::Float(f) => emit::double(*f),
        FillValue::Text(s) => emit::string(s),
    };
    if crate::validate::fill_value_type(v) == ty {
        text
    } else {
        format!("CAST({text} AS {})", emit::type_name(ty))
    }
}

/// A literal separator as a Java regex: every character that is not a letter or digit
/// escaped (Java allows `\` before any of them).
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if !c.is_alphanumeric() && c.is_ascii() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The pass condition of a row-level rule (NULL passes, as the polars engine counts it).
fn row_predicate(r: &crate::spec::RuleSpec, ty: Option<ColumnType>) -> Option<String> {
    let c = emit::column(r.column.as_deref()?);
    let text = match ty {
        Some(ColumnType::Double) => format!("etl_double_text({c})"),
        Some(ColumnType::String) | None => c.clone(),
        Some(_) => format!("CAST({c} AS string)"),
    };
    match r.rule {
        RuleKind::IsComplete => Some(format!("({c} IS NOT NULL)")),
        RuleKind::ColumnValues => Some(if let Some(re) = &r.matches {
            format!(
                "regexp_like({text}, {})",
                emit::string(&format!("^(?:{re})$"))
            )
        } else if let Some([lo, hi]) = r.between {
            let v = match ty {
                Some(ColumnType::String) => format!("etl_parse_double({c})"),
                _ => format!("CAST({c} AS double)"),
            };
            format!(
                "({v} >= {} AND {v} <= {})",
                emit::double(lo),
                emit::double(hi)
            )
        } else {
            let allowed: Vec<String> = r
                .allowed
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|a| emit::string(a))
                .collect();
            format!("({text} IN ({}))", allowed.join(", "))
        }),
        _ => None,
    }
}

/// Date and timestamp formats the runner's parser reads as chrono does: numeric fields,
/// literal separators, and whitespace (any run of it, or none).
fn check_format(fmt: &str) -> Result<(), String> {
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('Y' | 'm' | 'd' | 'H' | 'M' | 'S' | '%') => {}
                other => {
                    return Err(format!(
                        "the Spark runner reads formats made of %Y %m %d %H %M %S and \
                         separators; `%{}` is not one of them",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            }
        } else if c.is_alphanumeric() {
            return Err(format!(
                "the Spark runner reads formats made of %Y %m %d %H %M %S and separators; \
                 `{c}` is not a separator it reads as chrono does"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Result<Json, SpecError> {
        spark_plan(&PipelineSpec::from_yaml(yaml, "t.yaml").expect("a valid spec"))
    }

    const BASE: &str = "name: t\nsource: {prefix: p/, format: csv, null_values: [NA]}\nschema:\n  - {name: id, type: bigint, required: true}\n  - {name: s, type: string}\n  - {name: d, type: date, format: '%d/%m/%Y'}\n  - {name: m, type: 'decimal(5,2)'}\n";

    #[test]
    fn every_part_of_a_spec_reaches_the_plan() {
        let p = plan(&format!(
            "{BASE}steps:\n  - deduplicate: {{columns: [id]}}\n  - fill_null: {{s: none, m: 0}}\n  - filter: {{name: pos, where: 'id > 0'}}\n  - derive: {{column: u, sql: 'upper(s)'}}\n  - derive: {{column: seg, case: {{when: [{{if: 'm > 10', then: High}}], else: Low}}}}\n  - derive: {{column: dom, split: {{from: s, separator: '.', index: 1}}}}\n  - cast: {{column: s, to: bigint}}\n  - processed_at: {{}}\nquality:\n  min_score: 0.5\n  rules:\n    - {{rule: ColumnValues, column: u, matches: '[A-Z]+'}}\n    - {{rule: RowCount, min: 1, action: fail}}\noutput: {{partition_by: [seg], compression: snappy}}\n"
        ))
        .expect("plans");
        assert_eq!(p["dataset"], "t");
        assert_eq!(p["source"]["null_values"], json!(["NA"]));
        assert_eq!(p["schema"][0]["required"], true);
        assert_eq!(
            p["schema"][2]["parse"],
            "date_from_unix_date(etl_parse_date(`d`, '%d/%m/%Y'))"
        );
        let steps = p["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 8);
        assert_eq!(steps[1]["values"]["m"], "CAST('0' AS decimal(5,2))");
        assert_eq!(steps[2]["sql"], "(`id` > CAST('0' AS bigint))");
        assert_eq!(steps[2]["code"], "filter:pos");
        assert_eq!(steps[2]["can_fail"], false);
        assert_eq!(steps[3]["can_fail"], false);
        assert!(
            steps[4]["sql"]
                .as_str()
                .expect("sql")
                .ends_with("THEN 'High' ELSE 'Low' END")
        );
        assert_eq!(steps[5]["sql"], "get(split(`s`, '\\\\.', -1), 1)");
        assert_eq!(steps[6]["sql"], "etl_parse_bigint(`s`)");
        assert_eq!(steps[6]["code"], "invalid_cast:s");
        let rules = p["quality"]["rules"].as_array().expect("rules");
        assert_eq!(rules[0]["pass_sql"], "regexp_like(`u`, '^(?:[A-Z]+)$')");
        assert_eq!(rules[0]["action"], "quarantine");
        assert_eq!(rules[1]["pass_sql"], Json::Null);
        assert_eq!(p["output"]["compression"], "snappy");
        let cols: Vec<&str> = p["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            cols,
            ["id", "s", "d", "m", "u", "seg", "dom", "processed_at"]
        );
        assert_eq!(p["columns"][1]["type"], "bigint");
        // The manifest's and the catalog's names of each type, as the engine gives them.
        assert_eq!(p["columns"][1]["glue_type"], "bigint");
        assert_eq!(p["columns"][1]["dtype"], "i64");
        assert_eq!(p["columns"][3]["glue_type"], "decimal(5,2)");
        assert_eq!(p["columns"][7]["glue_type"], "timestamp");
        assert_eq!(
            p["columns"][7]["dtype"],
            ColumnType::Timestamp.to_polars().to_string()
        );
    }

    #[test]
    fn what_the_runner_cannot_run_is_refused_naming_the_field() {
        let e = plan(&format!(
            "{BASE}steps:\n  - join: {{path: ref.csv, on: s}}\n"
        ));
        // A join's reference is loaded by the polars engine only; the spec check passes.
        let e = e.expect_err("refused");
        assert_eq!(e.field, "steps[0].join");
        let e = plan(&format!(
            "{BASE}steps:\n  - derive: {{column: c, regex_replace: {{from: s, pattern: '(a)', replacement: '$1'}}}}\n"
        ))
        .expect_err("refused");
        assert_eq!(e.field, "steps[0].derive.regex_replace.replacement");
        assert_eq!(e.file, "t.yaml");
        let e = plan(&BASE.replace("%d/%m/%Y", "%d-%b-%Y")).expect_err("refused");
        assert_eq!(e.field, "schema[2].format");
    }

    #[test]
    fn pipelines_in_the_repository_all_plan() {
        // Read at run time (cargo test sets it): a test binary built in another checkout
        // sharing the target dir would otherwise look in that checkout.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test");
        let dir = std::path::Path::new(&manifest_dir).join("../../infra/pipelines");
        for entry in std::fs::read_dir(dir).expect("pipelines") {
            let path = entry.expect("entry").path();
            let spec = PipelineSpec::from_file(&path).expect("valid");
            let p = spark_plan(&spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(p["version"], PLAN_VERSION);
        }
    }
}
