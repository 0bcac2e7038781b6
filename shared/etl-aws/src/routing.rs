//! Which engine takes a file, and how many Glue workers a run gets.
//!
//! Shared by s3-processor (a file too large for one Lambda is handed to the workflow's
//! Glue engine) and source-data-checker (the workflow's Glue job is sized from the bytes
//! it lists), so both read the same variables and size runs the same way. Pure: no AWS.

use crate::config::{self, ConfigError, EnvSource};

/// Glue's smallest run of G.1X workers (one driver, one executor).
pub const GLUE_MIN_WORKERS_FLOOR: u32 = 2;
/// Defaults of [`RoutingConfig`] when a variable is unset.
pub const DEFAULT_MIN_WORKERS: u32 = 2;
pub const DEFAULT_MAX_WORKERS: u32 = 20;
/// 1 GiB of input per G.1X worker (4 vCPU): the Spark runner reads and types in Python, at
/// roughly 0.3 MB/s a core here (README, Engines), so about a quarter hour of work each.
pub const DEFAULT_BYTES_PER_WORKER: u64 = 1 << 30;

/// How many times its stored size a compressed object is to the engine: the generated
/// customers CSV (1M rows) shrinks 4.06x with `gzip -6` and 3.71x with `zstd -3`.
pub const COMPRESSED_EXPANSION: u64 = 4;

/// The bytes the engine reads for an object of `size` stored bytes: `.gz` and `.zst` count
/// [`COMPRESSED_EXPANSION`] times, so a compressed file is routed at the same amount of
/// work as a plain one.
pub fn engine_bytes(key: &str, size: u64) -> u64 {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".gz") || lower.ends_with(".zst") {
        size.saturating_mul(COMPRESSED_EXPANSION)
    } else {
        size
    }
}

/// Sizing settings, from `GLUE_ROUTE_BYTES`, `GLUE_MIN_WORKERS`, `GLUE_MAX_WORKERS` and
/// `GLUE_BYTES_PER_WORKER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingConfig {
    /// `GLUE_ROUTE_BYTES` (default 0): a file larger than this goes to the Glue engine;
    /// 0 routes nothing.
    pub route_bytes: u64,
    /// `GLUE_MIN_WORKERS` (default 2, at least 2 as Glue requires for G.1X).
    pub min_workers: u32,
    /// `GLUE_MAX_WORKERS` (default 20, at least the minimum).
    pub max_workers: u32,
    /// `GLUE_BYTES_PER_WORKER` (default 4 GiB, above 0): input bytes one worker takes.
    pub bytes_per_worker: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            route_bytes: 0,
            min_workers: DEFAULT_MIN_WORKERS,
            max_workers: DEFAULT_MAX_WORKERS,
            bytes_per_worker: DEFAULT_BYTES_PER_WORKER,
        }
    }
}

impl RoutingConfig {
    /// Reads the four variables (part of each function's `Config::from_env`).
    pub fn from_source(env: &impl EnvSource) -> Result<Self, ConfigError> {
        let route_bytes = config::parse_or(env, "GLUE_ROUTE_BYTES", 0_u64)?;
        let min_workers = config::parse_or(env, "GLUE_MIN_WORKERS", DEFAULT_MIN_WORKERS)?;
        if min_workers < GLUE_MIN_WORKERS_FLOOR {
            return Err(config::invalid(
                "GLUE_MIN_WORKERS",
                min_workers.to_string(),
                format!("must be at least {GLUE_MIN_WORKERS_FLOOR} (Glue's minimum for G.1X)"),
            ));
        }
        let max_workers = config::parse_or(env, "GLUE_MAX_WORKERS", DEFAULT_MAX_WORKERS)?;
        if max_workers < min_workers {
            return Err(config::invalid(
                "GLUE_MAX_WORKERS",
                max_workers.to_string(),
                format!("must be at least GLUE_MIN_WORKERS ({min_workers})"),
            ));
        }
        let bytes_per_worker =
            config::parse_or(env, "GLUE_BYTES_PER_WORKER", DEFAULT_BYTES_PER_WORKER)?;
        if bytes_per_worker == 0 {
            return Err(config::invalid(
                "GLUE_BYTES_PER_WORKER",
                "0",
                "must be above 0",
            ));
        }
        Ok(Self {
            route_bytes,
            min_workers,
            max_workers,
            bytes_per_worker,
        })
    }

    /// Whether a file whose engine reads `size` bytes ([`engine_bytes`]) goes to the Glue
    /// engine.
    pub fn routes_to_glue(&self, size: u64) -> bool {
        self.route_bytes > 0 && size > self.route_bytes
    }

    /// Workers for a Glue run over `total_bytes`: one per `bytes_per_worker` started,
    /// within `[min_workers, max_workers]`.
    pub fn glue_workers(&self, total_bytes: u64) -> u32 {
        let wanted = total_bytes.div_ceil(self.bytes_per_worker);
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        wanted.clamp(self.min_workers, self.max_workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizing(min: u32, max: u32, per: u64) -> RoutingConfig {
        RoutingConfig {
            route_bytes: 0,
            min_workers: min,
            max_workers: max,
            bytes_per_worker: per,
        }
    }

    #[test]
    fn workers_are_the_bytes_per_worker_rounded_up_within_the_bounds() {
        let c = sizing(2, 10, 100);
        let cases = [
            (0, 2),
            (1, 2),
            (200, 2),
            (201, 3),
            (300, 3),
            (301, 4),
            (1000, 10),
            (1001, 10),
            (u64::MAX, 10),
        ];
        for (bytes, want) in cases {
            assert_eq!(c.glue_workers(bytes), want, "{bytes} bytes");
        }
        // Bounds equal: always that many.
        assert_eq!(sizing(5, 5, 1).glue_workers(0), 5);
        assert_eq!(sizing(5, 5, 1).glue_workers(1 << 40), 5);
        // More chunks than u32 holds still clamps, not wraps.
        assert_eq!(sizing(2, u32::MAX, 1).glue_workers(u64::MAX), u32::MAX);
    }

    #[test]
    fn routing_is_strictly_above_the_threshold_and_zero_is_never() {
        let c = RoutingConfig {
            route_bytes: 1000,
            ..RoutingConfig::default()
        };
        assert!(!c.routes_to_glue(0));
        assert!(!c.routes_to_glue(1000));
        assert!(c.routes_to_glue(1001));
        // Compressed objects count expanded.
        assert_eq!(engine_bytes("raw/a.csv", 300), 300);
        assert_eq!(engine_bytes("raw/a.csv.gz", 300), 1200);
        assert_eq!(engine_bytes("raw/a.JSON.ZST", 300), 1200);
        assert_eq!(engine_bytes("raw/a.zst.csv", 300), 300);
        assert_eq!(engine_bytes("raw/a.gz", u64::MAX), u64::MAX);
        assert!(c.routes_to_glue(engine_bytes("raw/a.csv.gz", 251)));
        assert!(!c.routes_to_glue(engine_bytes("raw/a.csv.gz", 250)));
        let never = RoutingConfig::default();
        assert_eq!(never.route_bytes, 0);
        assert!(!never.routes_to_glue(u64::MAX));
    }

    #[test]
    fn config_defaults_and_typed_errors_naming_the_variable() {
        let c = RoutingConfig::from_source(&[("X", "y")]).unwrap();
        assert_eq!(c, RoutingConfig::default());
        assert_eq!((c.min_workers, c.max_workers), (2, 20));
        let c = RoutingConfig::from_source(&[
            ("GLUE_ROUTE_BYTES", "5000"),
            ("GLUE_MIN_WORKERS", "3"),
            ("GLUE_MAX_WORKERS", "3"),
            ("GLUE_BYTES_PER_WORKER", "10"),
        ])
        .unwrap();
        assert_eq!(
            c,
            RoutingConfig {
                route_bytes: 5000,
                min_workers: 3,
                max_workers: 3,
                bytes_per_worker: 10
            }
        );
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("GLUE_ROUTE_BYTES", "-1")], "GLUE_ROUTE_BYTES"),
            (&[("GLUE_ROUTE_BYTES", "10GB")], "GLUE_ROUTE_BYTES"),
            (&[("GLUE_MIN_WORKERS", "1")], "GLUE_MIN_WORKERS"),
            (&[("GLUE_MAX_WORKERS", "1")], "GLUE_MAX_WORKERS"),
            (
                &[("GLUE_MIN_WORKERS", "6"), ("GLUE_MAX_WORKERS", "5")],
                "GLUE_MAX_WORKERS",
            ),
            (&[("GLUE_BYTES_PER_WORKER", "0")], "GLUE_BYTES_PER_WORKER"),
        ];
        for (vars, name) in cases {
            let env: std::collections::HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let err = RoutingConfig::from_source(&env).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { name: n, .. } if n == name),
                "{vars:?}: {err}"
            );
        }
    }
}
