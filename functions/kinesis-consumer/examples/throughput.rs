//! Decode + classify + aggregate throughput on 10,000-record batches, one core.
//!
//! `cargo build --release --workspace --example throughput`, then run the binary (or `make
//! bench-functions`); --workspace keeps the shared feature set, so nothing recompiles.
//! The target is at least 200,000 records/s. This prints a figure; it asserts nothing
//! (speed is measured by benchmarks, not by timed tests).

use std::time::Instant;

use base64::Engine as _;
use kinesis_consumer::{BatchRecord, KinesisData, decode_and_aggregate};

fn batch(offset: usize) -> Vec<BatchRecord> {
    let engine = &base64::engine::general_purpose::STANDARD;
    (0..10_000)
        .map(|i| {
            let n = offset + i;
            let json = if n.is_multiple_of(10) {
                format!(
                    r#"{{"event_type":"purchase","customer_id":"{}","session_id":"sess_{}","product_id":"P{:03}","quantity":1,"amount":{}.99,"timestamp":"2024-05-01T12:{:02}:{:02}.123456"}}"#,
                    n % 5_000,
                    n % 20_000,
                    n % 500,
                    n % 1_000,
                    (n / 60) % 60,
                    n % 60
                )
            } else {
                format!(
                    r#"{{"event_type":"page_view","customer_id":"{}","session_id":"sess_{}","page_url":"/products/{}","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","timestamp":"2024-05-01T12:{:02}:{:02}Z"}}"#,
                    n % 5_000,
                    n % 20_000,
                    n % 700,
                    (n / 60) % 60,
                    n % 60
                )
            };
            BatchRecord {
                kinesis: KinesisData {
                data: engine.encode(json),
                partition_key: (n % 5_000).to_string(),
                sequence_number: format!("4959033827149025660855969253836157109592157598{n:010}"),
                approximate_arrival_timestamp: 1_714_564_800.0 + n as f64 / 1000.0,
                },
                ..Default::default()
            }
        })
        .collect()
}

fn main() {
    let batches: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let inputs: Vec<Vec<BatchRecord>> = (0..batches).map(|b| batch(b * 10_000)).collect();
    // Warm-up.
    let _ = decode_and_aggregate(&inputs[0]);
    let started = Instant::now();
    let mut windows = 0;
    let mut malformed = 0;
    for records in &inputs {
        let (w, m) = decode_and_aggregate(records);
        windows += w.len();
        malformed += m;
    }
    let elapsed = started.elapsed();
    let records = batches * 10_000;
    println!(
        "{records} records in {batches} batches: {:.1} ms, {:.0} records/s, {windows} session windows, {malformed} malformed",
        elapsed.as_secs_f64() * 1000.0,
        records as f64 / elapsed.as_secs_f64()
    );
}
