//! Parsers for the scalar fields of the exports: timestamps, money and booleans.
//!
//! They work on bytes and allocate nothing: they run once per input row.

/// Microseconds since the Unix epoch of `YYYY-MM-DD HH:MM:SS[.fraction]` (UTC, no zone).
///
/// The hour may have one digit (`2019-01-01 0:00:05`), the separator may be `T`, the fraction
/// has 1 to 9 digits and is truncated to microseconds. Surrounding spaces are ignored.
/// Returns `None` for anything else, including impossible dates such as February 30th.
pub fn parse_timestamp_micros(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    fixed_layout(s).or_else(|| any_layout(s))?.micros()
}

/// The parts of a timestamp, not yet checked for range.
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: i64,
}

impl Parts {
    fn micros(&self) -> Option<i64> {
        let Parts {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } = *self;
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64;
        Some(secs * 1_000_000 + micros)
    }
}

/// The exports' own layout, `YYYY-MM-DD HH:MM:SS` with or without `.ffffff`: every character
/// at a fixed place, so no scanning. Timestamps are a fifth of the clickstream's bytes and this
/// is most of their cost (docs/performance.md, sixth round). Anything else: `None`, and
/// [`any_layout`] decides.
fn fixed_layout(s: &[u8]) -> Option<Parts> {
    if !(s.len() == 19 || s.len() == 26) {
        return None;
    }
    let separators = s[4] == b'-'
        && s[7] == b'-'
        && s[10] == b' '
        && s[13] == b':'
        && s[16] == b':'
        && (s.len() == 19 || s[19] == b'.');
    if !separators {
        return None;
    }
    let digits = |from: usize, to: usize| {
        s[from..to].iter().try_fold(0u32, |v, &c| {
            let d = c.wrapping_sub(b'0');
            (d < 10).then_some(v * 10 + d as u32)
        })
    };
    Some(Parts {
        year: digits(0, 4)? as i64,
        month: digits(5, 7)?,
        day: digits(8, 10)?,
        hour: digits(11, 13)?,
        minute: digits(14, 16)?,
        second: digits(17, 19)?,
        micros: if s.len() == 26 {
            digits(20, 26)? as i64
        } else {
            0
        },
    })
}

/// Every layout [`parse_timestamp_micros`] accepts.
fn any_layout(s: &[u8]) -> Option<Parts> {
    let mut p = Cursor { s, i: 0 };
    let year = p.digits(4, 4)? as i64;
    p.byte(b'-')?;
    let month = p.digits(1, 2)?;
    p.byte(b'-')?;
    let day = p.digits(1, 2)?;
    if !(p.byte(b' ').is_some() || p.byte(b'T').is_some()) {
        return None;
    }
    let hour = p.digits(1, 2)?;
    p.byte(b':')?;
    let minute = p.digits(2, 2)?;
    p.byte(b':')?;
    let second = p.digits(2, 2)?;
    let mut micros = 0i64;
    if p.byte(b'.').is_some() {
        let start = p.i;
        let frac = p.digits(1, 9)?;
        let len = p.i - start;
        micros = if len <= 6 {
            frac as i64 * 10i64.pow(6 - len as u32)
        } else {
            frac as i64 / 10i64.pow(len as u32 - 6)
        };
    }
    (p.i == s.len()).then_some(Parts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Formats microseconds since the epoch as `YYYY-MM-DD HH:MM:SS`, with `.ffffff` only when the
/// fraction is not zero: the canonical text form of the expected results.
pub fn format_timestamp_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    if frac == 0 {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{frac:06}")
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn byte(&mut self, b: u8) -> Option<()> {
        (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
    }

    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut v = 0u32;
        let start = self.i;
        while self.i - start < max {
            match self.s.get(self.i) {
                Some(c @ b'0'..=b'9') => {
                    v = v * 10 + (c - b'0') as u32;
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i - start >= min).then_some(v)
    }
}

/// Scale of money values inside the program: micro-units. Two decimals are what the exports
/// have; six leave room for finer prices while sums stay exact integers.
pub const MONEY_SCALE: i8 = 6;

/// Parses a billing cost such as `951.92`, `1,000.00` or `12` into micro-units.
///
/// Thousands separators must stand every three digits; a sign other than a leading `+`,
/// more than six decimals, exponents, NaN and infinities are refused with a reason.
pub fn parse_money_micros(s: &[u8]) -> Result<i64, &'static str> {
    let s = s.trim_ascii();
    let s = s.strip_prefix(b"+").unwrap_or(s);
    if s.is_empty() {
        return Err("empty billingCost");
    }
    if s[0] == b'-' {
        return Err("negative billingCost");
    }
    let (int_part, frac_part) = match s.iter().position(|&c| c == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b""[..]),
    };
    if int_part.is_empty() {
        return Err("billingCost has no digits before the decimal point");
    }
    let mut units: i64 = 0;
    let has_commas = int_part.contains(&b',');
    for (group_index, group) in int_part.split(|&c| c == b',').enumerate() {
        let bad_group = if has_commas {
            group.is_empty() || group.len() > 3 || (group_index > 0 && group.len() != 3)
        } else {
            group.is_empty()
        };
        if bad_group {
            return Err("billingCost has misplaced thousands separators");
        }
        for &c in group {
            if !c.is_ascii_digit() {
                return Err("billingCost is not a decimal number");
            }
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add((c - b'0') as i64))
                .ok_or("billingCost is too large: at most 999999999999.999999")?;
        }
    }
    if frac_part.len() > MONEY_SCALE as usize {
        return Err("billingCost has more than 6 decimal places");
    }
    let mut frac: i64 = 0;
    for &c in frac_part {
        if !c.is_ascii_digit() {
            return Err("billingCost is not a decimal number");
        }
        frac = frac * 10 + (c - b'0') as i64;
    }
    frac *= 10i64.pow(MONEY_SCALE as u32 - frac_part.len() as u32);
    units
        .checked_mul(10i64.pow(MONEY_SCALE as u32))
        .and_then(|u| u.checked_add(frac))
        // decimal(18,6) holds less than 10^12: one limit for every path, checked here, so
        // no file is written that other readers (pyarrow, Spark) refuse.
        .filter(|&micros| micros < MAX_MONEY_MICROS)
        .ok_or("billingCost is too large: at most 999999999999.999999")
}

/// One more than the largest billingCost, in micro-units: what decimal(18,6) holds.
pub const MAX_MONEY_MICROS: i64 = 1_000_000_000_000_000_000;

/// Parses isConfirmed: `True/False/true/false/TRUE/FALSE/1/0`.
pub fn parse_confirmed(s: &[u8]) -> Option<bool> {
    match s.trim_ascii() {
        b"True" | b"true" | b"TRUE" | b"1" => Some(true),
        b"False" | b"false" | b"FALSE" | b"0" => Some(false),
        _ => None,
    }
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Parses a delimiter given as one ASCII character or the word `tab`.
pub fn parse_delimiter(s: &str) -> crate::error::Result<u8> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        s if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        other => Err(crate::error::Error::Config(format!(
            "delimiter {other:?} must be a single ASCII character or 'tab'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<i64> {
        parse_timestamp_micros(s.as_bytes())
    }

    #[test]
    fn timestamps_in_every_form_of_the_exports() {
        assert_eq!(ts("1970-01-01 00:00:00"), Some(0));
        assert_eq!(ts("2020-11-15 22:55:16"), Some(1_605_480_916_000_000));
        assert_eq!(
            ts("2020-11-15 22:55:16.927329"),
            Some(1_605_480_916_927_329)
        );
        assert_eq!(ts("2020-11-15 22:55:16.9"), Some(1_605_480_916_900_000));
        assert_eq!(
            ts("2020-11-15 22:55:16.123456789"),
            Some(1_605_480_916_123_456)
        );
        assert_eq!(ts("2019-01-01 0:00:05"), ts("2019-01-01 00:00:05"));
        assert_eq!(ts("2020-11-15T22:55:16"), ts("2020-11-15 22:55:16"));
        assert_eq!(ts(" 2020-02-29 10:00:00 "), Some(1_582_970_400_000_000));
    }

    #[test]
    fn timestamps_that_are_not_valid() {
        for bad in [
            "",
            "2020-11-15",
            "2020-13-01 00:00:00",
            "2021-02-29 00:00:00",
            "2020-11-15 24:00:00",
            "2020-11-15 22:60:00",
            "2020-11-15 22:55:16.",
            "2020-11-15 22:55:16Z",
            "2020-11-15 22:55:16+01:00",
            "15/11/2020 22:55:16",
        ] {
            assert_eq!(ts(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn the_fixed_layout_fast_path_agrees_with_the_general_parser() {
        let general = |s: &[u8]| any_layout(s.trim_ascii()).and_then(|p| p.micros());
        for valid in ["2020-11-15 22:55:16.927329", "2020-02-29 23:59:59"] {
            let mut checked = 0;
            for at in 0..valid.len() {
                for c in b"0123459-: .T+a" {
                    let mut s = valid.as_bytes().to_vec();
                    s[at] = *c;
                    let fast = fixed_layout(&s).and_then(|p| p.micros());
                    if fixed_layout(&s).is_some() {
                        checked += 1;
                        assert_eq!(fast, general(&s), "{:?}", String::from_utf8_lossy(&s));
                    }
                    assert_eq!(
                        parse_timestamp_micros(&s),
                        general(&s),
                        "{:?}",
                        String::from_utf8_lossy(&s)
                    );
                }
            }
            assert!(
                checked > valid.len() * 5,
                "the fast path took too few: {checked}"
            );
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 59, 18_500, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(
            format_timestamp_micros(1_605_480_916_927_329),
            "2020-11-15 22:55:16.927329"
        );
        assert_eq!(
            format_timestamp_micros(1_605_480_916_000_000),
            "2020-11-15 22:55:16"
        );
    }

    #[test]
    fn money_is_limited_to_what_decimal_18_6_holds() {
        assert_eq!(
            parse_money_micros(b"999999999999.999999"),
            Ok(MAX_MONEY_MICROS - 1)
        );
        for big in [
            &b"1000000000000"[..],
            b"9200000000000",
            b"99999999999999999999",
        ] {
            let err = parse_money_micros(big).unwrap_err();
            assert!(err.starts_with("billingCost is too large"), "{err}");
        }
    }

    #[test]
    fn money_with_thousands_separators_is_exact() {
        assert_eq!(parse_money_micros(b"951.92"), Ok(951_920_000));
        assert_eq!(parse_money_micros(b"1,000.00"), Ok(1_000_000_000));
        assert_eq!(parse_money_micros(b"1,234,567.5"), Ok(1_234_567_500_000));
        assert_eq!(parse_money_micros(b"12"), Ok(12_000_000));
        assert_eq!(parse_money_micros(b"0.000001"), Ok(1));
    }

    #[test]
    fn money_that_is_refused() {
        for bad in [
            "",
            "-1.00",
            "NaN",
            "inf",
            "1e3",
            "1,00.00",
            "1.2.3",
            ".5",
            "12,",
            "0.0000001",
        ] {
            assert!(parse_money_micros(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn confirmed_flags() {
        for t in ["True", "true", "TRUE", "1"] {
            assert_eq!(parse_confirmed(t.as_bytes()), Some(true));
        }
        for f in ["False", "false", "FALSE", "0"] {
            assert_eq!(parse_confirmed(f.as_bytes()), Some(false));
        }
        assert_eq!(parse_confirmed(b"yes"), None);
    }
}
