//! Errors of the engine. Each names what a user needs to fix it: the spec file and line,
//! or the input file, line, record and field.

use std::fmt;

/// A spec that cannot run. Raised at load, before any data is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub file: String,
    pub line: Option<u64>,
    /// Where in the spec (`steps[3].filter.where`); empty when the parser could not say.
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid spec {}", self.file)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if !self.field.is_empty() {
            write!(f, " ({})", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl SpecError {
    pub(crate) fn at(
        line: Option<u64>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: String::new(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Input that cannot be read at all (as opposed to a bad row, which is quarantined).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The file or object (`s3://bucket/key`).
    pub input: String,
    pub line: Option<u64>,
    pub record: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad input {}", self.input)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(record) = self.record {
            write!(f, " record {record}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field '{field}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl InputError {
    pub(crate) fn new(input: &str, message: impl Into<String>) -> Self {
        Self {
            input: input.to_string(),
            line: None,
            record: None,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    pub(crate) fn in_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
}

/// Everything a run can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Engine {
        context: String,
        #[source]
        source: polars::error::PolarsError,
    },
}

impl EtlError {
    /// A stable name for the class of failure, for Step Functions Retry/Catch and metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Spec(_) => "InvalidSpec",
            Self::Input(_) => "InvalidInput",
            Self::Io { .. } => "IoError",
            Self::Engine { .. } => "EngineError",
        }
    }

    /// A failure of the engine's own machinery (a thread that panicked or stopped), not of
    /// a polars operation.
    pub(crate) fn engine(what: &str) -> Self {
        Self::Engine {
            context: what.to_string(),
            source: polars::error::PolarsError::ComputeError(what.to_string().into()),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The first `T` in an error's chain. An `io::Error`'s payload is looked into as well:
/// `io::Error::source` skips it, and readers mark their errors by wrapping them there.
pub fn find_cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(payload) => Some(payload as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Adds context to polars errors, which on their own rarely say which step failed.
pub(crate) trait PolarsContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, EtlError>;
}

impl<T> PolarsContext<T> for polars::error::PolarsResult<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, EtlError> {
        self.map_err(|source| EtlError::Engine {
            context: context(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_line_and_field() {
        let e = SpecError {
            file: "customers.yaml".into(),
            line: Some(12),
            field: "steps[2].filter.where".into(),
            message: "unknown column `amt`".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid spec customers.yaml line 12 (steps[2].filter.where): unknown column `amt`"
        );
        let e = InputError::new("in.csv", "'x' is not a valid double")
            .at_line(7)
            .in_field("amount");
        assert_eq!(
            e.to_string(),
            "bad input in.csv line 7 field 'amount': 'x' is not a valid double"
        );
        assert_eq!(EtlError::from(e).error_type(), "InvalidInput");
    }
}
