//! Tracing initialisation for Lambda.
//!
//! lambda_runtime 1.x ships `lambda_runtime::tracing::init_default_subscriber()`, which
//! reads AWS_LAMBDA_LOG_FORMAT (JSON or text) and AWS_LAMBDA_LOG_LEVEL (then RUST_LOG,
//! default INFO). We do the same with two differences: Lambda's `FATAL` level maps to
//! `error` (the stock one falls back to INFO, logging far more than asked), and a second
//! call is a no-op instead of a panic (tests call handlers, and so init, many times).

use lambda_runtime::tracing::subscriber::{self, EnvFilter, filter::LevelFilter};

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Resolved logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An EnvFilter directive string, e.g. `info` or `info,aws_smithy_runtime=warn`.
    pub filter: String,
}

/// Resolves settings from the values of AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL and
/// RUST_LOG. RUST_LOG may carry per-target directives; Lambda's level is a single level.
pub fn resolve(
    log_format: Option<&str>,
    lambda_level: Option<&str>,
    rust_log: Option<&str>,
) -> LogSettings {
    let format = match log_format {
        Some(f) if f.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let filter = match lambda_level.map(str::trim).filter(|s| !s.is_empty()) {
        Some(level) => match level.to_ascii_lowercase().as_str() {
            "fatal" | "error" => "error",
            "warn" | "warning" => "warn",
            "debug" => "debug",
            "trace" => "trace",
            _ => "info",
        }
        .to_string(),
        None => rust_log
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("info")
            .to_string(),
    };
    LogSettings { format, filter }
}

/// Installs the global subscriber (stdout, no ANSI colours, no timestamps: CloudWatch adds
/// them). Safe to call more than once.
pub fn init() {
    let env = |k: &str| std::env::var(k).ok();
    let settings = resolve(
        env("AWS_LAMBDA_LOG_FORMAT").as_deref(),
        env("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        env("RUST_LOG").as_deref(),
    );
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(&settings.filter);
    let builder = subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .without_time();
    // Err means a subscriber is already installed, which is fine.
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_controls_win() {
        let s = resolve(Some("JSON"), Some("FATAL"), Some("debug"));
        assert_eq!(s.format, LogFormat::Json);
        assert_eq!(s.filter, "error");
        let s = resolve(Some("Text"), None, Some("info,aws_smithy_runtime=warn"));
        assert_eq!(s.format, LogFormat::Text);
        assert_eq!(s.filter, "info,aws_smithy_runtime=warn");
        let s = resolve(None, Some(""), None);
        assert_eq!(s.filter, "info");
        assert_eq!(resolve(None, Some("WARN"), None).filter, "warn");
    }

    #[test]
    fn init_twice_is_harmless() {
        init();
        init();
    }
}
