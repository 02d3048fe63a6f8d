//! The `hash_bucket(text)` function: a stable hash of a string, reduced to `0..BUCKETS`.
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

use datafusion::arrow::array::{AsArray, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The function's SQL name.
pub const NAME: &str = "hash_bucket";

/// How many buckets: well above any thread count (the buckets are spread over the threads),
/// few enough that per-bucket window state is negligible.
pub const BUCKETS: u32 = 4096;

/// The scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HashBucket {
    signature: Signature,
}

impl Default for HashBucket {
    fn default() -> Self {
        HashBucket {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

/// The function, ready to register.
pub fn hash_bucket_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(HashBucket::default())
}

/// FNV-1a (64 bit) of `bytes`, mixed, reduced to `0..buckets`.
pub fn bucket_of(bytes: &[u8], buckets: u32) -> i32 {
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
    (h % u64::from(buckets.max(1))) as i32
}

impl ScalarUDFImpl for HashBucket {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.as_slice() {
            [ColumnarValue::Scalar(ScalarValue::Utf8(v))] => Ok(ColumnarValue::Scalar(
                ScalarValue::Int32(v.as_ref().map(|s| bucket_of(s.as_bytes(), BUCKETS))),
            )),
            [ColumnarValue::Array(array)] => {
                let out: Int32Array = array
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.map(|s| bucket_of(s.as_bytes(), BUCKETS)))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            other => exec_err!("{NAME} takes one string, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_of;

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
}
