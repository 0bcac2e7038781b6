//! Load-time checks of a spec: every column a step or rule names exists at that point,
//! expressions and regexes compile, values fit their column types.

use std::collections::HashSet;

use serde_saphyr::Spanned;

use crate::error::SpecError;
use crate::spec::{DeriveExpr, FillValue, PipelineSpec, RuleAction, RuleKind, RuleSpec, Step};
use crate::types::ColumnType;

/// The columns known at a point of the pipeline and their types (None: computed by SQL,
/// type known only at run time).
struct Columns(Vec<(String, Option<ColumnType>)>);

impl Columns {
    fn get(&self, name: &str) -> Option<Option<ColumnType>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }

    fn require(
        &self,
        name: &str,
        line: Option<u64>,
        field: &str,
    ) -> Result<Option<ColumnType>, SpecError> {
        self.get(name).ok_or_else(|| {
            SpecError::at(
                line,
                field,
                format!("unknown column `{name}`; known here: {}", self.names()),
            )
        })
    }

    fn set(&mut self, name: &str, ty: Option<ColumnType>) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = ty,
            None => self.0.push((name.to_string(), ty)),
        }
    }

    fn names(&self) -> String {
        self.0
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn line<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line()).filter(|l| *l > 0)
}

pub(crate) fn check(spec: &PipelineSpec) -> Result<(), SpecError> {
    if spec.name.is_empty()
        || !spec
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(SpecError::at(
            None,
            "name",
            format!(
                "`{}` is not a valid table name: use lowercase letters, digits and _",
                spec.name
            ),
        ));
    }
    if let Some(d) = spec.source.delimiter
        && !d.is_ascii()
    {
        return Err(SpecError::at(
            None,
            "source.delimiter",
            "must be one ASCII character",
        ));
    }
    let source = &spec.source;
    for (field, value, least) in [
        ("source.max_record_bytes", source.max_record_bytes, 1024),
        (
            "source.max_decompressed_bytes",
            source.max_decompressed_bytes,
            1024,
        ),
        (
            "source.max_compression_ratio",
            source.max_compression_ratio,
            1,
        ),
    ] {
        if value < least {
            return Err(SpecError::at(
                None,
                field,
                format!("must be at least {least}, not {value}"),
            ));
        }
    }
    if spec.schema.is_empty() {
        return Err(SpecError::at(None, "schema", "declare at least one column"));
    }
    let mut cols = Columns(Vec::new());
    for (i, f) in spec.schema.iter().enumerate() {
        let field = format!("schema[{i}]");
        if f.value.name.is_empty() || f.value.name.starts_with("__") {
            return Err(SpecError::at(
                line(f),
                field,
                "column names must be non-empty and not start with `__`",
            ));
        }
        if cols.get(&f.value.name).is_some() {
            return Err(SpecError::at(
                line(f),
                field,
                format!("column `{}` is declared twice", f.value.name),
            ));
        }
        if f.value.format.is_some()
            && !matches!(f.value.ty, ColumnType::Date | ColumnType::Timestamp)
        {
            return Err(SpecError::at(
                line(f),
                field,
                "`format` applies only to date and timestamp columns",
            ));
        }
        cols.set(&f.value.name, Some(f.value.ty));
    }

    for (i, step) in spec.steps.iter().enumerate() {
        check_step(&step.value, i, line(step), &mut cols)?;
    }

    for (i, rule) in spec.quality.rules.iter().enumerate() {
        check_rule(
            &rule.value,
            &format!("quality.rules[{i}]"),
            line(rule),
            &cols,
        )?;
    }
    if let Some(score) = spec.quality.min_score
        && !(0.0..=1.0).contains(&score)
    {
        return Err(SpecError::at(
            None,
            "quality.min_score",
            "must be between 0 and 1",
        ));
    }

    let mut seen = HashSet::new();
    for p in &spec.output.partition_by {
        cols.require(p, None, "output.partition_by")?;
        if !seen.insert(p) {
            return Err(SpecError::at(
                None,
                "output.partition_by",
                format!("`{p}` is listed twice"),
            ));
        }
    }
    if seen.len() == cols.0.len() {
        return Err(SpecError::at(
            None,
            "output.partition_by",
            "partitioning by every column leaves no data columns",
        ));
    }
    if spec.output.row_group_size == 0 {
        return Err(SpecError::at(
            None,
            "output.row_group_size",
            "must be positive",
        ));
    }
    Ok(())
}

fn check_step(
    step: &Step,
    i: usize,
    line: Option<u64>,
    cols: &mut Columns,
) -> Result<(), SpecError> {
    let field = format!("steps[{i}].{}", step.kind());
    match step {
        Step::Deduplicate(d) => {
            for c in d.columns.iter().flatten() {
                cols.require(c, line, &field)?;
            }
        }
        Step::FillNull(values) => {
            if values.is_empty() {
                return Err(SpecError::at(
                    line,
                    field,
                    "name at least one column to fill",
                ));
            }
            for (name, value) in values {
                let ty = cols.require(name, line, &field)?;
                if let Some(ty) = ty {
                    check_value_type(value, ty)
                        .map_err(|m| SpecError::at(line, format!("{field}.{name}"), m))?;
                }
            }
        }
        Step::Filter(f) => {
            if f.name.is_empty() {
                return Err(SpecError::at(line, field, "`name` must not be empty"));
            }
            check_sql(&f.condition, line, &format!("{field}.where"), cols)?;
        }
        Step::Derive(d) => {
            let expr = d.expr().map_err(|m| SpecError::at(line, &field, m))?;
            let ty = match expr {
                DeriveExpr::Sql(sql) => {
                    check_sql(sql, line, &format!("{field}.sql"), cols)?;
                    None
                }
                DeriveExpr::Case(case) => {
                    if case.when.is_empty() {
                        return Err(SpecError::at(
                            line,
                            format!("{field}.case"),
                            "needs at least one `if`",
                        ));
                    }
                    for (j, w) in case.when.iter().enumerate() {
                        check_sql(
                            &w.condition,
                            line,
                            &format!("{field}.case.when[{j}].if"),
                            cols,
                        )?;
                    }
                    let first = &case.when[0].then;
                    let all_same = case
                        .when
                        .iter()
                        .map(|w| &w.then)
                        .chain(case.otherwise.as_ref())
                        .all(|v| std::mem::discriminant(v) == std::mem::discriminant(first));
                    if !all_same {
                        return Err(SpecError::at(
                            line,
                            format!("{field}.case"),
                            "every `then` and `else` must be of one type",
                        ));
                    }
                    Some(fill_value_type(first))
                }
                DeriveExpr::Split(s) => {
                    require_text(cols, &s.from, line, &format!("{field}.split.from"))?;
                    if s.separator.is_empty() {
                        return Err(SpecError::at(
                            line,
                            format!("{field}.split.separator"),
                            "must not be empty",
                        ));
                    }
                    Some(ColumnType::String)
                }
                DeriveExpr::RegexReplace(r) => {
                    require_text(cols, &r.from, line, &format!("{field}.regex_replace.from"))?;
                    regex::Regex::new(&r.pattern).map_err(|e| {
                        SpecError::at(
                            line,
                            format!("{field}.regex_replace.pattern"),
                            e.to_string(),
                        )
                    })?;
                    Some(ColumnType::String)
                }
            };
            cols.set(&d.column, ty);
        }
        Step::Join(j) => {
            cols.require(&j.on, line, &format!("{field}.on"))?;
            if j.path.is_empty() {
                return Err(SpecError::at(
                    line,
                    format!("{field}.path"),
                    "must not be empty",
                ));
            }
            // The reference's columns are known once it is loaded; declared ones are
            // visible to later steps now.
            let reference_key = j.reference_on.as_deref().unwrap_or(&j.on);
            for c in j.columns.iter().flatten() {
                if c != reference_key {
                    let ty = j.schema.iter().find(|f| &f.name == c).map(|f| f.ty);
                    cols.set(c, Some(ty.unwrap_or(ColumnType::String)));
                }
            }
        }
        Step::Cast(c) => {
            cols.require(&c.column, line, &format!("{field}.column"))?;
            cols.set(&c.column, Some(c.to));
        }
        Step::ProcessedAt(p) => cols.set(&p.column, Some(ColumnType::Timestamp)),
    }
    Ok(())
}

fn check_rule(
    rule: &RuleSpec,
    field: &str,
    line: Option<u64>,
    cols: &Columns,
) -> Result<(), SpecError> {
    let err = |m: &str| SpecError::at(line, field, format!("{:?}: {m}", rule.rule));
    let needs_column = !matches!(rule.rule, RuleKind::RowCount);
    let column_type = match (&rule.column, needs_column) {
        (Some(c), true) if rule.rule == RuleKind::ColumnExists => {
            // Checked against the data, not the spec: that is the rule's point.
            let _ = c;
            None
        }
        (Some(c), true) => cols.require(c, line, &format!("{field}.column"))?,
        (None, true) => return Err(err("needs `column`")),
        (Some(_), false) => return Err(err("takes no `column`")),
        (None, false) => None,
    };
    if let Some(t) = rule.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(err("`threshold` must be between 0 and 1"));
    }
    if rule.action == Some(RuleAction::Quarantine) && !rule.rule.is_row_level() {
        return Err(err(
            "only IsComplete and ColumnValues can quarantine rows; use fail or alert",
        ));
    }
    match rule.rule {
        RuleKind::ColumnValues => {
            let given = [
                rule.matches.is_some(),
                rule.between.is_some(),
                rule.allowed.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(err("needs exactly one of `matches`, `between`, `in`"));
            }
            if let Some(re) = &rule.matches {
                regex::Regex::new(re).map_err(|e| err(&format!("`matches`: {e}")))?;
            }
            if let Some([lo, hi]) = rule.between {
                if lo > hi {
                    return Err(err("`between` needs [min, max] with min <= max"));
                }
                if matches!(column_type, Some(ColumnType::String | ColumnType::Boolean)) {
                    return Err(err("`between` needs a numeric column"));
                }
            }
        }
        RuleKind::RowCount => {
            if rule.min.is_none() && rule.max.is_none() {
                return Err(err("needs `min`, `max` or both"));
            }
            if let (Some(lo), Some(hi)) = (rule.min, rule.max)
                && lo > hi
            {
                return Err(err("`min` is above `max`"));
            }
        }
        RuleKind::DataFreshness => {
            let age = rule
                .max_age
                .as_deref()
                .ok_or_else(|| err("needs `max_age` (e.g. 24h)"))?;
            parse_age(age).map_err(|m| err(&m))?;
            if !matches!(
                column_type,
                None | Some(ColumnType::Date | ColumnType::Timestamp)
            ) {
                return Err(err("needs a date or timestamp column"));
            }
        }
        _ => {}
    }
    let stray = match rule.rule {
        RuleKind::ColumnValues => {
            rule.min.is_some() || rule.max.is_some() || rule.max_age.is_some()
        }
        RuleKind::RowCount => {
            rule.matches.is_some() || rule.between.is_some() || rule.allowed.is_some()
        }
        _ => {
            rule.matches.is_some()
                || rule.between.is_some()
                || rule.allowed.is_some()
                || rule.min.is_some()
                || rule.max.is_some()
        }
    } || (rule.rule != RuleKind::DataFreshness && rule.max_age.is_some());
    if stray {
        return Err(err("has settings that do not belong to this rule type"));
    }
    Ok(())
}

/// An age such as `90m`, `24h`, `7d`, in microseconds.
pub(crate) fn parse_age(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an age like 24h"))?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    Ok(n * secs * 1_000_000)
}

fn require_text(
    cols: &Columns,
    name: &str,
    line: Option<u64>,
    field: &str,
) -> Result<(), SpecError> {
    match cols.require(name, line, field)? {
        None | Some(ColumnType::String) => Ok(()),
        Some(t) => Err(SpecError::at(
            line,
            field,
            format!("`{name}` is {t}; this step needs a string column"),
        )),
    }
}

fn check_sql(sql: &str, line: Option<u64>, field: &str, cols: &Columns) -> Result<(), SpecError> {
    for name in &crate::sql::columns(sql, line, field)? {
        cols.require(name, line, field)?;
    }
    Ok(())
}

pub(crate) fn fill_value_type(v: &FillValue) -> ColumnType {
    match v {
        FillValue::Bool(_) => ColumnType::Boolean,
        FillValue::Int(_) => ColumnType::Bigint,
        FillValue::Float(_) => ColumnType::Double,
        FillValue::Text(_) => ColumnType::String,
    }
}

fn check_value_type(v: &FillValue, ty: ColumnType) -> Result<(), String> {
    use crate::types as t;
    let ok = match (v, ty) {
        (FillValue::Text(_), ColumnType::String)
        | (FillValue::Bool(_), ColumnType::Boolean)
        | (
            FillValue::Int(_),
            ColumnType::Bigint | ColumnType::Double | ColumnType::Decimal { .. },
        )
        | (FillValue::Float(_), ColumnType::Double | ColumnType::Decimal { .. }) => true,
        (FillValue::Text(s), ColumnType::Date) => t::parse_date(s, None).is_ok(),
        (FillValue::Text(s), ColumnType::Timestamp) => t::parse_timestamp(s, None).is_ok(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("fill value {v:?} does not fit a {ty} column"))
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::PipelineSpec;

    const BASE: &str = "\
name: t
source:
  prefix: raw/t/
schema:
  - {name: id, type: bigint, required: true}
  - {name: email, type: string}
  - {name: amount, type: double}
";

    fn load(extra: &str) -> Result<PipelineSpec, crate::error::SpecError> {
        PipelineSpec::from_yaml(&format!("{BASE}{extra}"), "t.yaml")
    }

    #[test]
    fn a_minimal_spec_loads() {
        let spec = load("").unwrap();
        assert_eq!(spec.schema.len(), 3);
        assert_eq!(spec.output.row_group_size, 122_880);
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let e = load("steps:\n  - filter: {name: x, where: 'amount > 0', bogus: 1}\n").unwrap_err();
        assert_eq!(e.file, "t.yaml");
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.contains("bogus"), "{e}");
    }

    #[test]
    fn unknown_column_in_a_step_names_step_and_line() {
        let e = load("steps:\n  - deduplicate: {}\n  - filter: {name: pos, where: 'amt >= 0'}\n")
            .unwrap_err();
        assert_eq!(e.line, Some(10), "{e}");
        assert_eq!(e.field, "steps[1].filter.where");
        assert!(e.message.contains("unknown column `amt`"), "{e}");
        assert!(
            e.to_string().starts_with("invalid spec t.yaml line 10"),
            "{e}"
        );
    }

    #[test]
    fn derived_columns_are_visible_to_later_steps_only() {
        load(
            "steps:\n  - derive: {column: domain, split: {from: email, separator: '@', index: 1}}\n  - filter: {name: d, where: \"domain <> ''\"}\n",
        )
        .unwrap();
        let e = load(
            "steps:\n  - filter: {name: d, where: \"domain <> ''\"}\n  - derive: {column: domain, split: {from: email, separator: '@', index: 1}}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown column `domain`"), "{e}");
    }

    #[test]
    fn bad_types_values_and_regexes_are_refused() {
        let e = PipelineSpec::from_yaml(&BASE.replace("double", "money"), "t.yaml").unwrap_err();
        assert!(e.message.contains("unknown type `money`"), "{e}");
        assert_eq!(e.line, Some(7), "{e}");
        let e = load("steps:\n  - fill_null: {amount: lots}\n").unwrap_err();
        assert_eq!(e.field, "steps[0].fill_null.amount");
        let e =
            load("steps:\n  - derive: {column: c, regex_replace: {from: email, pattern: '[a-'}}\n")
                .unwrap_err();
        assert!(e.field.ends_with("regex_replace.pattern"), "{e}");
        let e = load(
            "steps:\n  - derive: {column: c, split: {from: amount, separator: '@', index: 1}}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("needs a string column"), "{e}");
        let e = load("steps:\n  - derive: {column: c}\n").unwrap_err();
        assert!(e.message.contains("needs one of"), "{e}");
        let e = load("steps:\n  - filter: {name: x, where: 'amount >>> 1'}\n").unwrap_err();
        assert!(e.message.contains("cannot parse"), "{e}");
    }

    #[test]
    fn rules_are_checked() {
        let e = load("quality:\n  rules:\n    - {rule: RowCount, action: quarantine, min: 1}\n")
            .unwrap_err();
        assert!(
            e.message.contains("only IsComplete and ColumnValues"),
            "{e}"
        );
        assert_eq!(e.line, Some(10));
        let e =
            load("quality:\n  rules:\n    - {rule: ColumnValues, column: email}\n").unwrap_err();
        assert!(e.message.contains("exactly one of"), "{e}");
        let e = load("quality:\n  rules:\n    - {rule: Completeness, column: nope}\n").unwrap_err();
        assert!(e.message.contains("unknown column `nope`"), "{e}");
        let e = load("quality:\n  rules:\n    - {rule: DataFreshness, column: id, max_age: 1d}\n")
            .unwrap_err();
        assert!(e.message.contains("date or timestamp"), "{e}");
        let e = load("quality:\n  rules:\n    - {rule: Uniqueness, column: id, threshold: 2}\n")
            .unwrap_err();
        assert!(e.message.contains("between 0 and 1"), "{e}");
        load("quality:\n  rules:\n    - {rule: ColumnExists, column: anything}\n").unwrap();
    }

    #[test]
    fn output_partitions_must_exist() {
        let e = load("output: {partition_by: [country]}\n").unwrap_err();
        assert_eq!(e.field, "output.partition_by");
        load("output: {partition_by: [email], compression: snappy}\n").unwrap();
    }

    #[test]
    fn ages_parse() {
        assert_eq!(super::parse_age("2h").unwrap(), 7_200_000_000);
        assert!(super::parse_age("2 weeks").is_err());
    }

    fn load_source(extra: &str) -> Result<PipelineSpec, crate::error::SpecError> {
        let text = BASE.replace("  prefix: raw/t/\n", &format!("  prefix: raw/t/\n{extra}"));
        PipelineSpec::from_yaml(&text, "t.yaml")
    }

    #[test]
    fn yaml_nulls_in_null_values_are_the_text_written() {
        // README's own example, flow and block style: YAML reads bare NULL, null and ~ as
        // null, but the user wrote text.
        let flow = load_source("  null_values: [NULL, null, NA, N/A, ~, Null, 'null', \"\"]\n");
        let flow = flow.unwrap();
        assert_eq!(
            flow.source.null_values,
            ["NULL", "null", "NA", "N/A", "~", "Null", "null", ""]
        );
        let block = load_source("  null_values:\n    - NULL\n    - nil\n    - ~\n").unwrap();
        assert_eq!(block.source.null_values, ["NULL", "nil", "~"]);
        let absent = load_source("").unwrap();
        assert_eq!(absent.source.null_values, ["NULL", "null", "NA", "N/A"]);
        let empty = load_source("  null_values: []\n").unwrap();
        assert!(empty.source.null_values.is_empty());
    }

    #[test]
    fn spec_type_errors_name_the_field_and_line_in_yaml_words() {
        let e = load_source("  null_values: [NA, [x]]\n").unwrap_err();
        assert_eq!(e.field, "source.null_values[1]", "{e}");
        assert_eq!(e.line, Some(4), "{e}");
        let e =
            PipelineSpec::from_yaml(&BASE.replace("{name: email, type: string}", "5"), "t.yaml")
                .unwrap_err();
        assert_eq!(e.field, "schema[1]", "{e}");
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("mapping"), "{e}");
        let e = load("output: {row_group_size: -3}\n").unwrap_err();
        assert_eq!(e.field, "output.row_group_size", "{e}");
        assert!(e.message.contains("whole number of 0 or more"), "{e}");
        let e = load("steps:\n  - filter: {name: x, where: [1]}\n").unwrap_err();
        assert_eq!(e.field, "steps[0].filter.where", "{e}");
        assert_eq!(e.line, Some(9), "{e}");
        let e =
            PipelineSpec::from_yaml(&BASE.replace("name: t\n", "name: ~\n"), "t.yaml").unwrap_err();
        assert_eq!(e.field, "name", "{e}");
        for e in [
            load_source("  null_values: [NA, [x]]\n").unwrap_err(),
            load("output: {row_group_size: -3}\n").unwrap_err(),
            PipelineSpec::from_yaml(&BASE.replace("name: t\n", "name: ~\n"), "t.yaml").unwrap_err(),
            PipelineSpec::from_yaml(&BASE.replace("{name: email, type: string}", "5"), "t.yaml")
                .unwrap_err(),
        ] {
            // Rust's names for types (Option<String>, usize, struct FieldSpec) mean nothing
            // to a spec's author.
            let text = e.to_string();
            for rust in ["Option", "String", "usize", "u64", "struct", "enum", "<"] {
                assert!(!text.contains(rust), "{text}");
            }
        }
    }
}
