//! `etl generate`: a dirty customers file with defects at known rates, and the counts the
//! customers spec must report on it (one defect per row, so the expectation is exact).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::exit;

#[derive(Args)]
pub struct GenerateArgs {
    /// Data rows to write.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    #[arg(long)]
    output: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Same seed, same file.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the counts the customers spec must report, as JSON.
    #[arg(long)]
    expect: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Csv,
    Ndjson,
}

/// splitmix64: tiny, fast, and deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A defect and its rate in parts per 10,000, with the quarantine reason it produces
/// under infra/pipelines/customers.yaml (None: the row is kept).
const DEFECTS: [(Defect, u64); 9] = [
    (Defect::Duplicate, 500),
    (Defect::NullName, 300),
    (Defect::NullAmount, 200),
    (Defect::NegativeAmount, 300),
    (Defect::EmailWithoutAt, 200),
    (Defect::NullEmail, 100),
    (Defect::EmailWithoutDot, 100),
    (Defect::BadPurchaseAmount, 50),
    (Defect::MissingId, 50),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Defect {
    None,
    Duplicate,
    NullName,
    NullAmount,
    NegativeAmount,
    EmailWithoutAt,
    NullEmail,
    EmailWithoutDot,
    BadPurchaseAmount,
    MissingId,
}

impl Defect {
    fn reason(self) -> Option<&'static str> {
        match self {
            Self::NegativeAmount => Some("filter:non_negative_amount"),
            Self::EmailWithoutAt | Self::NullEmail => Some("filter:email_has_at"),
            Self::EmailWithoutDot => Some("rule:ColumnValues:email"),
            Self::BadPurchaseAmount => Some("invalid_value:purchase_amount"),
            Self::MissingId => Some("rule:IsComplete:customer_id"),
            Self::None | Self::Duplicate | Self::NullName | Self::NullAmount => None,
        }
    }
}

const FIRST: [&str; 12] = [
    "Alice", "Bob", "Carla", "Dan", "Eve", "Frank", "Grace", "Hiro", "Ines", "Jack", "Kate", "Liam",
];
const LAST: [&str; 10] = [
    "Martin", "Chen", "Ruiz", "Moore", "Adams", "Lee", "Tanaka", "Silva", "Brown", "Murphy",
];
const COUNTRIES: [&str; 10] = ["US", "GB", "DE", "FR", "ES", "JP", "BR", "IN", "CA", "AU"];
const DOMAINS: [&str; 5] = [
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "shop.example",
    "example.co.uk",
];
const WORDS: [&str; 12] = [
    "Premium",
    "plan,",
    "annual!",
    "Basic",
    "(monthly)",
    "add-on:",
    "storage",
    "#3",
    "seats",
    "x10",
    "refund",
    "team",
];

struct Row {
    id: Option<u64>,
    name: Option<String>,
    email: Option<String>,
    country: &'static str,
    purchase_amount: String,
    amount: Option<String>,
    description: String,
    signup_date: String,
}

fn clean_row(rng: &mut Rng, id: u64) -> Row {
    let first = rng.pick(&FIRST);
    let last = rng.pick(&LAST);
    let words: Vec<&str> = (0..3 + rng.below(4)).map(|_| rng.pick(&WORDS)).collect();
    Row {
        id: Some(id),
        name: Some(format!("{first} {last}")),
        email: Some(format!(
            "{}.{}{}@{}",
            first.to_lowercase(),
            last.to_lowercase(),
            id % 1000,
            rng.pick(&DOMAINS)
        )),
        country: rng.pick(&COUNTRIES),
        purchase_amount: format!("{}.{:02}", rng.below(1500), rng.below(100)),
        amount: Some(format!("{}.{:02}", rng.below(2000), rng.below(100))),
        description: words.join(" "),
        signup_date: format!(
            "20{:02}-{:02}-{:02}",
            18 + rng.below(7),
            1 + rng.below(12),
            1 + rng.below(28)
        ),
    }
}

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

fn write_row(
    w: &mut impl Write,
    row: &Row,
    format: Format,
    line: &mut String,
) -> std::io::Result<()> {
    line.clear();
    match format {
        Format::Csv => {
            let id = row.id.map(|i| i.to_string()).unwrap_or_default();
            let fields = [
                id.as_str(),
                row.name.as_deref().unwrap_or(""),
                row.email.as_deref().unwrap_or(""),
                row.country,
                &row.purchase_amount,
                row.amount.as_deref().unwrap_or(""),
                &row.description,
                &row.signup_date,
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                csv_field(line, f);
            }
        }
        Format::Ndjson => {
            let obj = serde_json::json!({
                "customer_id": row.id,
                "name": row.name,
                "email": row.email,
                "country": row.country,
                "purchase_amount": row.purchase_amount.parse::<f64>().map_or(
                    serde_json::Value::String(row.purchase_amount.clone()),
                    serde_json::Value::from,
                ),
                "amount": row.amount.as_deref().and_then(|a| a.parse::<f64>().ok()),
                "description": row.description,
                "signup_date": row.signup_date,
            });
            line.push_str(&obj.to_string());
        }
    }
    line.push('\n');
    w.write_all(line.as_bytes())
}

pub fn generate(args: &GenerateArgs) -> u8 {
    match generate_inner(args) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: writing {}: {e}", args.output.display());
            exit::FAILURE
        }
    }
}

fn generate_inner(args: &GenerateArgs) -> std::io::Result<()> {
    let mut rng = Rng(args.seed);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&args.output)?);
    if args.format == Format::Csv {
        w.write_all(
            b"customer_id,name,email,country,purchase_amount,amount,description,signup_date\n",
        )?;
    }
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut duplicates = 0u64;
    let mut kept = 0u64;
    // Clean rows recently written: the pool duplicates are drawn from.
    let mut recent: Vec<Row> = Vec::new();
    let mut line = String::with_capacity(256);
    for i in 0..args.rows {
        let roll = rng.below(10_000);
        let mut acc = 0;
        let mut defect = Defect::None;
        for (d, rate) in DEFECTS {
            acc += rate;
            if roll < acc {
                defect = d;
                break;
            }
        }
        if defect == Defect::Duplicate && recent.is_empty() {
            defect = Defect::None;
        }
        if defect == Defect::Duplicate {
            let j = rng.below(recent.len() as u64) as usize;
            write_row(&mut w, &recent[j], args.format, &mut line)?;
            duplicates += 1;
            continue;
        }
        let mut row = clean_row(&mut rng, i + 1);
        match defect {
            Defect::NullName => row.name = None,
            Defect::NullAmount => row.amount = None,
            Defect::NegativeAmount => row.amount = Some(format!("-{}.50", 1 + rng.below(500))),
            Defect::EmailWithoutAt => row.email = row.email.map(|e| e.replace('@', " at ")),
            Defect::NullEmail => row.email = None,
            Defect::EmailWithoutDot => row.email = Some(format!("user{i}@localhost")),
            Defect::BadPurchaseAmount => row.purchase_amount = "n/a-amount".into(),
            Defect::MissingId => row.id = None,
            Defect::None | Defect::Duplicate => {}
        }
        write_row(&mut w, &row, args.format, &mut line)?;
        match defect.reason() {
            Some(reason) => *counts.entry(reason).or_default() += 1,
            None => kept += 1,
        }
        if matches!(defect, Defect::None) {
            if recent.len() < 1024 {
                recent.push(row);
            } else {
                let slot = rng.below(1024) as usize;
                recent[slot] = row;
            }
        }
    }
    w.flush()?;
    if let Some(path) = &args.expect {
        let expect = serde_json::json!({
            "rows_in": args.rows,
            "rows_out": kept,
            "duplicates": duplicates,
            "quarantined": counts.values().sum::<u64>(),
            "quarantined_by_reason": counts,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&expect)?)?;
    }
    Ok(())
}
