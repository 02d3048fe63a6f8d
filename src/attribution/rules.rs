//! The rules' constants in one Rust place, for every engine: rule 1's tie rank and the event
//! types sessions need. The SQL gets them as the registered function `tie_rank(eventType)`;
//! the udaf and the hashing dedup call [`tie_rank`] and [`is_relevant`].

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

pub const APP_OPEN: &str = "app_open";
pub const APP_CLOSE: &str = "app_close";
pub const PURCHASE: &str = "purchase";

/// Rule 1's tie ranks: at equal eventTime, app_open first, app_close last, the rest between.
pub const OPEN_RANK: u8 = 0;
pub const OTHER_RANK: u8 = 1;
pub const CLOSE_RANK: u8 = 2;

/// Rule 1's tie rank of an event type.
pub fn tie_rank(event_type: &str) -> u8 {
    match event_type {
        APP_OPEN => OPEN_RANK,
        APP_CLOSE => CLOSE_RANK,
        _ => OTHER_RANK,
    }
}

/// The boundary and purchase events: the rows sessions need.
pub fn is_relevant(event_type: &str) -> bool {
    matches!(event_type, APP_OPEN | APP_CLOSE | PURCHASE)
}

/// [`tie_rank`] of each value (a null ranks as any other type).
pub fn tie_ranks(types: &StringArray) -> Int64Array {
    types
        .iter()
        .map(|t| Some(i64::from(tie_rank(t.unwrap_or_default()))))
        .collect()
}

/// `tie_rank(eventType)`, as dedup.sql orders by it.
pub fn tie_rank_udf() -> ScalarUDF {
    create_udf(
        "tie_rank",
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let [value] = args else {
                return exec_err!("tie_rank takes one argument, the eventType");
            };
            let array = value.to_array(1)?;
            let Some(types) = array.as_string_opt::<i32>() else {
                return exec_err!("tie_rank: eventType is {}, not text", array.data_type());
            };
            let ranks: ArrayRef = Arc::new(tie_ranks(types));
            Ok(match value {
                ColumnarValue::Scalar(_) => ColumnarValue::Scalar(
                    datafusion::common::ScalarValue::try_from_array(&ranks, 0)?,
                ),
                ColumnarValue::Array(_) => ColumnarValue::Array(ranks),
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_rank_first_and_closes_last() {
        assert!(tie_rank(APP_OPEN) < tie_rank("delivered"));
        assert!(tie_rank("delivered") < tie_rank(APP_CLOSE));
        assert_eq!(tie_rank(PURCHASE), tie_rank("search"));
        let ranks = tie_ranks(&StringArray::from(vec![
            Some("app_close"),
            None,
            Some("app_open"),
        ]));
        assert_eq!(ranks.values(), &[2, 1, 0]);
    }
}
