//! Dates as the command line and the warehouse write them: `YYYY-MM-DD` days, quarters and
//! run ids, on chrono. Days are numbered from 1970-01-01, as Arrow's Date32. The hot path's
//! timestamp parser is `input::values`' own.

use chrono::{Datelike, NaiveDate, Utc};

use crate::error::{Error, Result};

/// 1970-01-01, day 0.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn day_number(date: NaiveDate) -> i32 {
    (date - epoch()).num_days() as i32
}

/// `YYYY-MM-DD` of a day number since 1970-01-01.
pub fn format_date(days: i32) -> String {
    match epoch().checked_add_signed(chrono::Duration::days(days as i64)) {
        Some(date) => date.format("%Y-%m-%d").to_string(),
        None => format!("day {days}"),
    }
}

/// Day number of a `YYYY-MM-DD` date (years 0001 to 9999).
pub fn parse_date(s: &str) -> Result<i32> {
    let bad = || Error::Config(format!("{s:?} is not a date YYYY-MM-DD"));
    let t = s.trim();
    // chrono accepts a year of any width; a warehouse folder name has four digits.
    if t.len() != 10 {
        return Err(bad());
    }
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad())?;
    if !(1..=9999).contains(&date.year()) {
        return Err(bad());
    }
    Ok(day_number(date))
}

/// First and last day of a quarter such as `2020-Q4`.
pub fn quarter(q: &str) -> Result<(i32, i32)> {
    let bad = || Error::Config(format!("{q:?} is not a quarter such as 2020-Q4"));
    let (year, n) = q.trim().split_once("-Q").ok_or_else(bad)?;
    let n: u32 = n.parse().map_err(|_| bad())?;
    let year: i32 = match year.parse() {
        Ok(y) if year.len() == 4 && (1..=9999).contains(&y) && (1..=4).contains(&n) => y,
        _ => return Err(bad()),
    };
    let first = NaiveDate::from_ymd_opt(year, 3 * n - 2, 1).ok_or_else(bad)?;
    // The quarter's last day, not the next quarter's first less one: 9999-Q4 has no next.
    let last_month = 3 * n;
    let last = (28..=31)
        .rev()
        .find_map(|d| NaiveDate::from_ymd_opt(year, last_month, d))
        .ok_or_else(bad)?;
    Ok((day_number(first), day_number(last)))
}

/// A short id that tells runs apart in logs: UTC time and process id.
pub fn new_run_id() -> String {
    format!(
        "{}-{:x}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_across_the_whole_range() {
        for s in [
            "0001-01-01",
            "1969-12-31",
            "1970-01-01",
            "2020-02-29",
            "9999-12-31",
        ] {
            assert_eq!(format_date(parse_date(s).unwrap()), s);
        }
        assert_eq!(parse_date("1970-01-02").unwrap(), 1);
        for bad in ["2020-13-01", "2020-02-30", "20-01-01", "10000-01-01", "x"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quarters_start_and_end_on_their_days() {
        let (f, t) = quarter("2020-Q4").unwrap();
        assert_eq!(
            (format_date(f), format_date(t)),
            ("2020-10-01".into(), "2020-12-31".into())
        );
        let (f, t) = quarter("2024-Q1").unwrap();
        assert_eq!(
            (format_date(f), format_date(t)),
            ("2024-01-01".into(), "2024-03-31".into())
        );
        assert_eq!(format_date(quarter("9999-Q4").unwrap().1), "9999-12-31");
        for bad in ["2020-Q5", "2020-Q0", "20-Q1", "2020Q1"] {
            assert!(quarter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_ids_start_with_the_utc_time() {
        let id = new_run_id();
        assert_eq!(id.as_bytes()[8], b'T');
        assert!(id[..8].bytes().all(|b| b.is_ascii_digit()), "{id}");
    }
}
