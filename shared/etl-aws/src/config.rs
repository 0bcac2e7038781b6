//! Helpers for each function's `Config::from_env()`.
//!
//! Reading goes through [`EnvSource`] so configs can be tested with a map instead of the
//! process environment (which Rust 2024 only lets us mutate with `unsafe`).

use std::collections::HashMap;
use std::str::FromStr;

/// A configuration problem, naming the variable at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("missing required environment variable {name}")]
    Missing { name: String },
    /// A variable is set but its value cannot be used.
    #[error("invalid value {value:?} for environment variable {name}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// Where configuration values come from.
pub trait EnvSource {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<const N: usize> EnvSource for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_string())
    }
}

/// The trimmed value of `name`; unset and empty (after trimming) are both `None`, because
/// SAM templates commonly set optional variables to "".
pub fn optional(env: &impl EnvSource, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The value of `name`, or [`ConfigError::Missing`].
pub fn required(env: &impl EnvSource, name: &str) -> Result<String, ConfigError> {
    optional(env, name).ok_or_else(|| ConfigError::Missing {
        name: name.to_string(),
    })
}

/// `name` parsed as `T`, or `default` when unset.
pub fn parse_or<T>(env: &impl EnvSource, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(env, name) {
        None => Ok(default),
        Some(value) => value.parse::<T>().map_err(|e| ConfigError::Invalid {
            name: name.to_string(),
            reason: e.to_string(),
            value,
        }),
    }
}

/// A comma-separated list (items trimmed, empty items dropped), or `None` when unset.
pub fn list(env: &impl EnvSource, name: &str) -> Option<Vec<String>> {
    optional(env, name).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

/// Shorthand for an [`ConfigError::Invalid`] raised by a function's own validation.
pub fn invalid(name: &str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_are_missing() {
        let env = [("A", "  "), ("B", "x")];
        assert_eq!(
            required(&env, "A"),
            Err(ConfigError::Missing { name: "A".into() })
        );
        assert_eq!(
            required(&env, "C").unwrap_err().to_string(),
            "missing required environment variable C"
        );
        assert_eq!(required(&env, "B").unwrap(), "x");
    }

    #[test]
    fn parse_names_the_variable() {
        let env = [("N", "abc"), ("M", "7")];
        let err = parse_or::<u32>(&env, "N", 1).unwrap_err();
        assert!(err.to_string().contains("environment variable N"), "{err}");
        assert_eq!(parse_or::<u32>(&env, "M", 1).unwrap(), 7);
        assert_eq!(parse_or::<u32>(&env, "X", 1).unwrap(), 1);
    }

    #[test]
    fn list_splits_and_trims() {
        let env = [("L", " .csv, ,.json ")];
        assert_eq!(list(&env, "L").unwrap(), vec![".csv", ".json"]);
        assert_eq!(list(&env, "Z"), None);
    }
}
