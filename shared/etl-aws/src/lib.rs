//! The AWS edges shared by the ETL Lambda functions.
//!
//! Everything that talks to AWS (or formats something AWS reads, such as EMF metric lines)
//! lives here, so the functions stay thin and the transform engine (`etl-core`) stays pure.
//! No polars, no dependency on `etl-core`.
//!
//! | module | what |
//! | --- | --- |
//! | [`config`] | typed errors for `Config::from_env()` |
//! | [`clients`] | SDK clients built once, LocalStack-aware |
//! | [`error`] | [`EtlError`] with a stable `error_type` for Step Functions Retry/Catch |
//! | [`s3`] | streaming GET, multipart PUT that aborts on failure, paginated list |
//! | [`glue`] | catalog sync: create/evolve tables, add partitions |
//! | [`ssm`] | parameter cache with TTL and decryption |
//! | [`sns`] | publish with a sanitized subject |
//! | [`sfn`] | idempotent StartExecution |
//! | [`routing`] | Lambda or Glue by file size, Glue workers by bytes |
//! | [`metrics`] | CloudWatch Embedded Metric Format on stdout |
//! | [`logging`] | tracing init honouring Lambda's log controls |

pub mod clients;
pub mod config;
pub mod error;
pub mod glue;
pub mod logging;
pub mod metrics;
pub mod routing;
pub mod s3;
pub mod sfn;
pub mod sns;
pub mod ssm;

pub use error::{ErrorKind, EtlError};

/// A stable 64-bit FNV-1a hash. Used where a name must be derived deterministically from
/// content (execution names, manifest keys); `std`'s hasher is not stable across releases.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hash that ties a source object to what s3-processor derives from it (output file
/// names, its manifest key `<prefix><dataset>/<stem>-<hash as 16 hex digits>.json`).
/// Shared so source-data-checker finds a source's manifest without knowing its dataset.
pub fn source_object_hash(bucket: &str, key: &str) -> u64 {
    stable_hash(format!("{bucket}/{key}").as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_hash_is_fnv1a() {
        // Reference values of FNV-1a 64.
        assert_eq!(super::stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
