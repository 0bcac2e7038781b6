//! `etl`: try a pipeline spec on a local file, with no AWS at all.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod generate;
mod run;

/// Run, check and bootstrap ETL pipeline specs locally.
#[derive(Parser)]
#[command(name = "etl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a spec on an input file: Parquet tree, quarantine file and manifest in OUTPUT.
    Run(run::RunArgs),
    /// Check a spec (and load its reference tables) without reading any data.
    Validate {
        #[arg(long)]
        spec: PathBuf,
    },
    /// Check a spec and print the plan another engine runs, as JSON (`--target spark`: the
    /// Spark runner's plan, expressions as Spark SQL text).
    Plan {
        #[arg(long)]
        spec: PathBuf,
        #[arg(long, value_enum, default_value_t = run::Target::Spark)]
        target: run::Target,
    },
    /// Infer a schema from an input file and print a starter spec.
    Schema {
        #[arg(long)]
        input: PathBuf,
        /// Dataset name for the starter spec (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Rows sampled to infer types.
        #[arg(long, default_value_t = 10_000)]
        sample_rows: usize,
    },
    /// Print the id s3-processor and the Glue job name an S3 object's outputs by
    /// (`<file name id>-<FNV-1a 64 of bucket/key>`).
    OutputId {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        key: String,
    },
    /// Write a dirty customers CSV with defects at known rates (for demos and benchmarks).
    Generate(generate::GenerateArgs),
}

/// Exit codes a script can act on.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const BAD_SPEC: u8 = 3;
    pub const BAD_INPUT: u8 = 4;
    pub const QUALITY_FAILED: u8 = 5;
}

fn main() -> ExitCode {
    etl_core::tune_allocator();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate { spec } => run::validate(&spec),
        Command::Plan { spec, target } => run::plan(&spec, target),
        Command::Schema {
            input,
            name,
            sample_rows,
        } => run::schema(&input, name.as_deref(), sample_rows),
        Command::OutputId { bucket, key } => {
            println!("{}", etl_core::object_output_id(&bucket, &key));
            exit::OK
        }
        Command::Generate(args) => generate::generate(&args),
    };
    ExitCode::from(code)
}
