//! The attribution's SQL functions: the `sessionize` aggregate of the udaf engine, rule 1's
//! `tie_rank` and the hashes the cluster's repartitioning uses (see `bucket`).

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

/// The aggregate functions.
pub fn udafs() -> Vec<AggregateUDF> {
    vec![
        super::udaf::sessionize_udaf(),
        super::udaf::sessionize_with_sessions_udaf(),
    ]
}

/// The scalar functions.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        super::bucket::hash_bucket_udf(),
        super::bucket::key_hash_udf(),
        super::rules::tie_rank_udf(),
    ]
}
