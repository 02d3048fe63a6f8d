//! `iso_week(t)` (text `2020-W53`) and `iso_week_start(t)` (the Monday, a date) of a timestamp,
//! for every year from 0001 to 9999.
//!
//! DataFusion's `date_trunc` and `date_part` work in nanoseconds, whose range ends in 2262: a
//! purchase in 9999 failed the weekly projection with "Timestamp … out of range". These work on
//! day numbers.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Date32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::input::values::{civil_from_days, days_from_civil};

/// The SQL names.
pub const ISO_WEEK: &str = "iso_week";
pub const ISO_WEEK_START: &str = "iso_week_start";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The ISO week of day number `day` (days since 1970-01-01): its year and number.
pub fn iso_week_of(day: i64) -> (i64, i64) {
    let thursday = week_start(day) + 3;
    let (year, _, _) = civil_from_days(thursday);
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

/// The Monday of the week of `day`.
pub fn week_start(day: i64) -> i64 {
    // 1970-01-01 was a Thursday: three days after a Monday.
    day - (day + 3).rem_euclid(7)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IsoWeek {
    name: &'static str,
    signature: Signature,
}

/// `iso_week` and `iso_week_start`, ready to register.
pub fn udfs() -> [ScalarUDF; 2] {
    [ISO_WEEK, ISO_WEEK_START].map(|name| {
        ScalarUDF::new_from_impl(IsoWeek {
            name,
            signature: Signature::new(
                TypeSignature::Exact(vec![DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some(crate::input::schema::UTC.into()),
                )]),
                Volatility::Immutable,
            ),
        })
    })
}

impl ScalarUDFImpl for IsoWeek {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.name == ISO_WEEK {
            DataType::Utf8
        } else {
            DataType::Date32
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = match args.args.as_slice() {
            [ColumnarValue::Array(a)] => a.clone(),
            [ColumnarValue::Scalar(s)] => s.to_array()?,
            other => return exec_err!("{} takes one timestamp, got {other:?}", self.name),
        };
        let Some(times) = array.as_primitive_opt::<TimestampMicrosecondType>() else {
            return exec_err!("{} takes a timestamp in microseconds", self.name);
        };
        let days = times
            .iter()
            .map(|t| t.map(|t| t.div_euclid(MICROS_PER_DAY)));
        let out: Arc<dyn Array> = if self.name == ISO_WEEK {
            Arc::new(
                days.map(|d| {
                    d.map(|d| {
                        let (year, week) = iso_week_of(d);
                        format!("{year:04}-W{week:02}")
                    })
                })
                .collect::<StringArray>(),
            )
        } else {
            Arc::new(
                days.map(|d| d.map(|d| week_start(d) as i32))
                    .collect::<Date32Array>(),
            )
        };
        Ok(match args.args.as_slice() {
            [ColumnarValue::Scalar(_)] => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(out.as_ref(), 0)?)
            }
            _ => ColumnarValue::Array(out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d)
    }

    #[test]
    fn iso_weeks_at_the_turn_of_years_and_at_the_ends_of_the_range() {
        for ((y, m, d), week, monday) in [
            ((2020, 12, 31), (2020, 53), (2020, 12, 28)),
            ((2021, 1, 3), (2020, 53), (2020, 12, 28)),
            ((2021, 1, 4), (2021, 1), (2021, 1, 4)),
            ((2019, 12, 30), (2020, 1), (2019, 12, 30)),
            ((2020, 9, 30), (2020, 40), (2020, 9, 28)),
            ((9999, 12, 31), (9999, 52), (9999, 12, 27)),
            ((1, 1, 1), (1, 1), (1, 1, 1)),
        ] {
            assert_eq!(iso_week_of(day(y, m, d)), week, "{y}-{m}-{d}");
            assert_eq!(
                week_start(day(y, m, d)),
                day(monday.0, monday.1, monday.2),
                "{y}-{m}-{d}"
            );
        }
    }
}
