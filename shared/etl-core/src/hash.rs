//! 128-bit row and value hashes, for deduplication and uniqueness across batches without
//! keeping the rows themselves. At 128 bits a collision (which would drop a distinct row
//! as a duplicate) is out of reach for any file size this engine sees.

use polars::prelude::*;
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// One hash per row over `columns`, in order.
pub(crate) fn row_hashes(df: &DataFrame, columns: &[PlSmallStr]) -> PolarsResult<Vec<u128>> {
    let mut rows = vec![0u128; df.height()];
    for name in columns {
        let values = column_hashes(df.column(name)?)?;
        for (acc, v) in rows.iter_mut().zip(values) {
            let mut buf = [0u8; 32];
            buf[..16].copy_from_slice(&acc.to_le_bytes());
            buf[16..].copy_from_slice(&v.to_le_bytes());
            *acc = xxh3_128_with_seed(&buf, 0);
        }
    }
    Ok(rows)
}

/// The null hash differs from every value's: values are hashed with a type tag as seed.
const NULL_HASH: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;

/// One hash per value of a column; nulls hash alike.
pub(crate) fn column_hashes(column: &Column) -> PolarsResult<Vec<u128>> {
    let physical = column.as_materialized_series().to_physical_repr();
    // The type tag is the seed: values of different types hash apart without copying
    // each value into a tagged buffer.
    let tagged = |tag: u64, bytes: &[u8]| xxh3_128_with_seed(bytes, tag);
    let out = match physical.dtype() {
        DataType::String => physical
            .str()?
            .iter()
            .map(|v| v.map_or(NULL_HASH, |s| tagged(1, s.as_bytes())))
            .collect(),
        DataType::Int64 => physical
            .i64()?
            .iter()
            .map(|v| v.map_or(NULL_HASH, |x| tagged(2, &x.to_le_bytes())))
            .collect(),
        DataType::Int32 => physical
            .i32()?
            .iter()
            .map(|v| v.map_or(NULL_HASH, |x| tagged(3, &x.to_le_bytes())))
            .collect(),
        DataType::Float64 => physical
            .f64()?
            .iter()
            // -0.0 == 0.0: hash them alike.
            .map(|v| v.map_or(NULL_HASH, |x| tagged(4, &(x + 0.0).to_bits().to_le_bytes())))
            .collect(),
        DataType::Boolean => physical
            .bool()?
            .iter()
            .map(|v| v.map_or(NULL_HASH, |b| tagged(5, &[u8::from(b)])))
            .collect(),
        DataType::Int128 => physical
            .i128()?
            .iter()
            .map(|v| v.map_or(NULL_HASH, |x| tagged(6, &x.to_le_bytes())))
            .collect(),
        DataType::UInt64 => physical
            .u64()?
            .iter()
            .map(|v| v.map_or(NULL_HASH, |x| tagged(7, &x.to_le_bytes())))
            .collect(),
        _ => {
            // Rare types (lists, derived oddities): hash their text form.
            let text = physical.cast(&DataType::String)?;
            text.str()?
                .iter()
                .map(|v| v.map_or(NULL_HASH, |s| tagged(8, s.as_bytes())))
                .collect()
        }
    };
    Ok(out)
}

/// The row hashes seen so far, for deduplication.
///
/// Memory is what limits dedup on big inputs, so a hash is kept in 8 bytes: its top 18
/// bits pick one of 262,144 shards and the next 64 bits are stored in that shard's sorted
/// vector. Two distinct rows are taken for duplicates only if they share those 82 bits,
/// a chance of about n^2 / 2^83: 2e-10 for 45 million distinct rows, 1e-7 for a billion.
/// A hash table of full 128-bit hashes took 24 bytes a row, 1.1 GB for a 5 GB CSV.
///
/// A shard holds n / 262,144 values (about 170 at 45 million rows), so the binary search
/// and the insert's shift of the tail stay within a cache line or two of lookups and a
/// kilobyte of copying; 65,536 shards made dedup 12% of a 10M-row run on one core. The
/// shard vectors themselves take 6 MB. They grow by an eighth, not by doubling, so spare
/// capacity stays near 6%.
pub(crate) struct SeenSet {
    shards: Vec<Vec<u64>>,
}

impl SeenSet {
    const SHARD_BITS: u32 = 18;

    /// Empty, and allocating nothing until the first insert.
    pub(crate) fn new() -> Self {
        Self { shards: Vec::new() }
    }

    /// True when `hash` was not seen before (the row is kept). The shards exist:
    /// [`insert_all`](Self::insert_all) makes them.
    fn insert(&mut self, hash: u128) -> bool {
        let shard = &mut self.shards[Self::shard_of(hash)];
        let key = (hash >> (64 - Self::SHARD_BITS)) as u64;
        match shard.binary_search(&key) {
            Ok(_) => false,
            Err(at) => {
                if shard.len() == shard.capacity() {
                    shard.reserve_exact((shard.len() / 8).max(4));
                }
                shard.insert(at, key);
                true
            }
        }
    }

    /// [`insert`](Self::insert) for each hash in order: one flag per hash, true where it
    /// was new.
    ///
    /// Each insert reads a random shard header, then that shard: two cache misses into
    /// megabytes, which one at a time were most of dedup's time. Reading a group's headers
    /// and a word of each shard first lets those misses overlap; the inserts then find the
    /// lines in cache.
    pub(crate) fn insert_all(&mut self, hashes: &[u128]) -> Vec<bool> {
        const GROUP: usize = 16;
        if self.shards.is_empty() {
            self.shards = vec![Vec::new(); 1 << Self::SHARD_BITS];
        }
        let mut new = Vec::with_capacity(hashes.len());
        for group in hashes.chunks(GROUP) {
            let mut touched = 0usize;
            for &h in group {
                touched ^= self.shards[Self::shard_of(h)].len();
            }
            for &h in group {
                let shard = &self.shards[Self::shard_of(h)];
                touched ^= shard.get(shard.len() / 2).map_or(0, |&k| k as usize);
            }
            // Keeps the reads above from being optimised away: they are the point.
            std::hint::black_box(touched);
            new.extend(group.iter().map(|&h| self.insert(h)));
        }
        new
    }

    fn shard_of(hash: u128) -> usize {
        (hash >> (128 - Self::SHARD_BITS)) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rows_hash_alike_and_nulls_are_distinct_from_values() {
        let df = df!(
            "a" => [Some(1i64), Some(1), None, Some(1)],
            "b" => [Some("x"), Some("x"), Some("x"), Some("y")],
        )
        .unwrap();
        let h = row_hashes(&df, &["a".into(), "b".into()]).unwrap();
        assert_eq!(h[0], h[1]);
        assert_ne!(h[0], h[2]);
        assert_ne!(h[0], h[3]);
        let only_b = row_hashes(&df, &["b".into()]).unwrap();
        assert_eq!(only_b[0], only_b[2]);
    }

    #[test]
    fn column_order_matters_and_types_are_tagged() {
        let df = df!("a" => ["1"], "b" => ["2"], "n" => [1i64]).unwrap();
        let ab = row_hashes(&df, &["a".into(), "b".into()]).unwrap();
        let ba = row_hashes(&df, &["b".into(), "a".into()]).unwrap();
        assert_ne!(ab, ba);
        let text = column_hashes(df.column("a").unwrap()).unwrap();
        let num = column_hashes(df.column("n").unwrap()).unwrap();
        assert_ne!(text, num, "the string \"1\" and the number 1 differ");
    }

    #[test]
    fn seen_set_keeps_first_occurrences_only() {
        let mut seen = SeenSet::new();
        let hashes = [
            1u128 << 64,
            u128::MAX,
            1 << 64,
            7 << 120,
            u128::MAX,
            7 << 120,
            8 << 64,
        ];
        // One at a time, across calls.
        let kept: Vec<bool> = hashes.iter().map(|&h| seen.insert_all(&[h])[0]).collect();
        assert_eq!(kept, [true, true, false, true, false, false, true]);
        // In one batch, repeats inside the same group of reads count alike.
        assert_eq!(
            SeenSet::new().insert_all(&hashes),
            [true, true, false, true, false, false, true]
        );
    }

    #[test]
    fn seen_set_agrees_with_a_full_hash_set_on_many_rows() {
        // Real row hashes, with every value repeated once: the compact set must keep
        // exactly the first occurrence of each, like a set of the full hashes.
        let hashes: Vec<u128> = (0..200_000u64)
            .chain(0..200_000u64)
            .map(|i| xxh3_128_with_seed(&i.to_le_bytes(), 0))
            .collect();
        let mut seen = SeenSet::new();
        let mut full = std::collections::HashSet::new();
        // Batches of uneven size, so groups straddle the batch ends.
        let mut kept = Vec::new();
        for batch in hashes.chunks(32_771) {
            kept.extend(seen.insert_all(batch));
        }
        for (i, (&h, kept)) in hashes.iter().zip(kept).enumerate() {
            assert_eq!(kept, full.insert(h), "row {i}");
        }
        assert_eq!(full.len(), 200_000);
    }
}
