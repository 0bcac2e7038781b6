//! A file too large for this function (over `GLUE_ROUTE_BYTES`) is handed to the workflow's
//! Glue engine: one workflow execution for that file, named from its bucket, key and ETag,
//! so a redelivered event (or the same file in a Map item) asks for the same execution and
//! Step Functions' `ExecutionAlreadyExists` makes the start idempotent.

use serde_json::{Value, json};

/// Longest readable part of an execution name: 80 characters minus `glue-`, `-` and the
/// 16-digit hash.
const NAME_STEM_CHARS: usize = etl_aws::sfn::MAX_NAME_LEN - 5 - 1 - 16;

/// The workflow execution that processes `s3://bucket/key` at `etag` on Glue:
/// `glue-<file name, cleaned and cut>-<hash of bucket, key and ETag>`. Quotes around the
/// ETag do not change it (S3 quotes ETags in some answers and not in others).
pub fn glue_execution_name(bucket: &str, key: &str, etag: Option<&str>) -> String {
    let file = key.rsplit('/').next().unwrap_or(key);
    let stem: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(NAME_STEM_CHARS)
        .collect();
    // NUL separates the parts: it occurs in none of them, so no two triples hash the same
    // text.
    let identity = format!(
        "{bucket}\0{key}\0{}",
        etag.map(etl_aws::s3::unquote_etag).unwrap_or("")
    );
    let hash = etl_aws::stable_hash(identity.as_bytes());
    format!("glue-{stem}-{hash:016x}")
}

/// The workflow input that runs the Glue engine on this one file (the workflow skips its
/// listing when the input carries `files`).
pub fn glue_input(bucket: &str, key: &str, etag: Option<&str>, size: u64, workers: u32) -> Value {
    json!({
        "engine": "glue",
        "files": [{
            "bucket": bucket,
            "key": key,
            "etag": etag.map(etl_aws::s3::unquote_etag),
            "size": size,
        }],
        "totalBytes": size,
        "glueWorkers": workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etl_aws::sfn::{MAX_NAME_LEN, is_valid_name};

    #[test]
    fn names_are_valid_deterministic_and_distinct_per_bucket_key_and_etag() {
        let n = glue_execution_name("raw", "raw-data/customers/big 1.csv", Some("\"abc\""));
        assert!(is_valid_name(&n), "{n}");
        assert!(n.starts_with("glue-big-1-csv-"), "{n}");
        assert_eq!(
            n,
            glue_execution_name("raw", "raw-data/customers/big 1.csv", Some("abc")),
            "quotes around the ETag do not count"
        );
        let others = [
            glue_execution_name("raw", "raw-data/customers/big 1.csv", Some("abd")),
            glue_execution_name("raw", "raw-data/customers/big 1.csv", None),
            glue_execution_name("raw2", "raw-data/customers/big 1.csv", Some("abc")),
            glue_execution_name("raw", "raw-data/other/big 1.csv", Some("abc")),
            // The same text split differently between bucket and key.
            glue_execution_name("raw-data", "customers/big 1.csv", Some("abc")),
        ];
        for o in &others {
            assert!(is_valid_name(o), "{o}");
            assert_ne!(&n, o);
        }

        // Long and non-ASCII names are cut to the limit, the hash kept whole.
        let long = format!("raw-data/customers/{}é.csv", "x".repeat(200));
        let n = glue_execution_name("raw", &long, Some("e"));
        assert_eq!(n.len(), MAX_NAME_LEN, "{n}");
        assert!(is_valid_name(&n), "{n}");
        let hash = etl_aws::stable_hash(format!("raw\0{long}\0e").as_bytes());
        assert!(n.ends_with(&format!("-{hash:016x}")), "{n}");
        let n = glue_execution_name("raw", "raw-data/日本.csv", None);
        assert!(is_valid_name(&n) && n.starts_with("glue----csv-"), "{n}");
    }

    #[test]
    fn the_input_names_exactly_the_file_with_its_size_and_workers() {
        assert_eq!(
            glue_input("raw", "raw-data/customers/a.csv", Some("\"e1\""), 5000, 3),
            json!({
                "engine": "glue",
                "files": [{"bucket": "raw", "key": "raw-data/customers/a.csv", "etag": "e1", "size": 5000}],
                "totalBytes": 5000,
                "glueWorkers": 3,
            })
        );
        assert_eq!(
            glue_input("raw", "k.csv", None, 1, 2)["files"][0]["etag"],
            Value::Null
        );
    }
}
