//! The `hash_bucket(text)` function: a stable hash of a string, reduced to `0..BUCKETS`; and
//! `key_hash(text)`, the same hash unreduced, for counting keys by hash (classify.sql).
//!
//! Why: a window `PARTITION BY eventId` (or `userId`) makes DataFusion's streaming window
//! operator keep state per distinct key, millions of them, and it spent most of the job's time
//! doing so (docs/performance.md). Partitioning by `hash_bucket(key)` instead and putting the
//! key first in the window's ORDER BY gives the same neighbours in the same order with
//! [`BUCKETS`] partitions. The count is fixed here rather than written in each query, so that
//! windows meant to share one sort (sessionize.sql) cannot disagree on it. The hash (FNV-1a,
//! then MurmurHash3's finalizer) is fixed: every process of a cluster, and every run, puts a key
//! in the same bucket.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int32Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The bucket function's SQL name.
pub const NAME: &str = "hash_bucket";

/// The SQL name of the unreduced hash, `key_hash(text)` (a BIGINT): for counting how often a
/// key occurs without holding the keys themselves (classify.sql).
pub const KEY_HASH: &str = "key_hash";

/// How many buckets: well above any thread count (the buckets are spread over the threads),
/// few enough that per-bucket window state is negligible.
pub const BUCKETS: u32 = 4096;

/// The scalar functions: `hash_bucket` with `buckets`, `key_hash` without.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HashBucket {
    signature: Signature,
    buckets: Option<u32>,
}

impl HashBucket {
    fn new(buckets: Option<u32>) -> Self {
        HashBucket {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
            buckets,
        }
    }
}

/// `hash_bucket`, ready to register.
pub fn hash_bucket_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(HashBucket::new(Some(BUCKETS)))
}

/// `key_hash`, ready to register.
pub fn key_hash_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(HashBucket::new(None))
}

/// FNV-1a (64 bit) of `bytes`, mixed, reduced to `0..buckets`.
pub fn bucket_of(bytes: &[u8], buckets: u32) -> i32 {
    (hash_of(bytes) % u64::from(buckets.max(1))) as i32
}

/// FNV-1a (64 bit) of `bytes`, finished with MurmurHash3's 64-bit mix.
pub fn hash_of(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV alone spreads keys that differ in their last bytes (event-1, event-2, ...) over a
    // few buckets only: finish with MurmurHash3's 64-bit mix.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

impl ScalarUDFImpl for HashBucket {
    fn name(&self) -> &str {
        if self.buckets.is_some() {
            NAME
        } else {
            KEY_HASH
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.buckets.is_some() {
            DataType::Int32
        } else {
            DataType::Int64
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let strings = match args.args.as_slice() {
            [ColumnarValue::Scalar(ScalarValue::Utf8(v))] => {
                let v = v.as_deref().map(str::as_bytes);
                return Ok(ColumnarValue::Scalar(match self.buckets {
                    Some(n) => ScalarValue::Int32(v.map(|s| bucket_of(s, n))),
                    None => ScalarValue::Int64(v.map(|s| hash_of(s) as i64)),
                }));
            }
            [ColumnarValue::Array(array)] => array.as_string::<i32>(),
            other => return exec_err!("{} takes one string, got {other:?}", self.name()),
        };
        let strings = strings.iter().map(|s| s.map(str::as_bytes));
        Ok(ColumnarValue::Array(match self.buckets {
            Some(n) => Arc::new(
                strings
                    .map(|s| s.map(|s| bucket_of(s, n)))
                    .collect::<Int32Array>(),
            ),
            None => Arc::new(
                strings
                    .map(|s| s.map(|s| hash_of(s) as i64))
                    .collect::<Int64Array>(),
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{bucket_of, hash_of};

    #[test]
    fn buckets_are_stable_and_in_range() {
        // Fixed values: a change of hash would move keys between buckets on mixed-version
        // clusters, so it must be deliberate.
        assert_eq!(bucket_of(b"a", 1 << 30), 0x29bece5b);
        assert_eq!(bucket_of(b"a", 4096), 0xe5b);
        assert_eq!(bucket_of(b"e3a1", 1), 0);
        let spread: std::collections::HashSet<i32> = (0..10_000)
            .map(|i| bucket_of(format!("event-{i}").as_bytes(), 64))
            .collect();
        assert_eq!(
            spread.len(),
            64,
            "10,000 keys should reach every one of 64 buckets"
        );
        assert!(spread.iter().all(|b| (0..64).contains(b)));
    }

    #[test]
    fn key_hash_is_the_bucket_hash_unreduced() {
        assert_eq!(hash_of(b"a") % (1 << 30), 0x29bece5b);
        for key in ["", "p1", "b3a1c9e0-0000-4000-8000-000000000001"] {
            assert_eq!(
                (hash_of(key.as_bytes()) % 4096) as i32,
                bucket_of(key.as_bytes(), 4096)
            );
        }
        assert_ne!(hash_of(b"p1"), hash_of(b"p2"));
    }
}
