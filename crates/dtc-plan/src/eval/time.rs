//! Time parsing and construction: `parse_time`, `strptime`, `fromtimestamp`, `timedelta(...)`,
//! `datetime(...)`. Every result is UTC with microsecond precision, like Python's datetime.

use chrono::format::ParseErrorKind;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};

use super::{EvalError, null_operand, overflow, type_error, value_error};
use crate::value::{Number, Value};

/// Python datetimes stop at microseconds.
fn truncate_micros(d: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = d.nanosecond();
    d.with_nanosecond(nanos - nanos % 1_000).unwrap_or(d)
}

const OFFSET_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d %H:%M%z",
];

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
    "%Y%m%dT%H%M%S%.f",
    "%m/%d/%Y %H:%M:%S%.f",
    "%m/%d/%Y %H:%M",
    "%d %b %Y %H:%M:%S%.f",
    "%b %d %Y %H:%M:%S%.f",
    "%a %b %d %H:%M:%S %Y",
];

const DATE_FORMATS: &[&str] = &[
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y%m%d",
    "%m/%d/%Y",
    "%d %b %Y",
    "%b %d %Y",
    "%B %d, %Y",
    "%b %d, %Y",
];

/// `parse_time(s)` / `parser.parse(s)`: ISO 8601 (with `T` or a space, with or without
/// fraction and offset, `Z`, date only), RFC 2822, and a few common layouts; naive → UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, EvalError> {
    // Event times hardly ever carry white space around them: when both end bytes are printable
    // ASCII, neither end is white space and the Unicode trim's scan of the ends is skipped.
    let bytes = text.as_bytes();
    let padded = !(bytes.first().is_some_and(u8::is_ascii_graphic)
        && bytes.last().is_some_and(u8::is_ascii_graphic));
    let s = if padded { text.trim() } else { text };
    if let Some(d) = parse_plain_iso(s.as_bytes()) {
        return Ok(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(truncate_micros(d.to_utc()));
    }
    // Most event times are ISO; skip layouts that cannot match before trying them.
    let has_offset = s.get(10..).is_some_and(|t| t.contains(['+', '-']));
    if has_offset {
        for fmt in OFFSET_FORMATS {
            if let Ok(d) = DateTime::parse_from_str(s, fmt) {
                return Ok(truncate_micros(d.to_utc()));
            }
        }
    }
    let has_words = s
        .bytes()
        .any(|b| b.is_ascii_alphabetic() && b != b'T' && b != b'Z');
    if has_words && let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Ok(truncate_micros(d.to_utc()));
    }
    // A trailing `Z` or `UTC` on an otherwise naive layout only confirms the default.
    let naive = s
        .strip_suffix(" UTC")
        .or_else(|| s.strip_suffix('Z'))
        .or_else(|| s.strip_suffix('z'))
        .unwrap_or(s);
    for fmt in NAIVE_FORMATS {
        if let Ok(d) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Ok(truncate_micros(d.and_utc()));
        }
    }
    for fmt in DATE_FORMATS {
        if let Ok(d) = NaiveDate::parse_from_str(naive, fmt) {
            return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
        }
    }
    Err(value_error(format!("unknown time format: {text:?}")))
}

/// The layout nearly every event source sends, `YYYY-MM-DD[T ]HH:MM:SS[.f][Z]`, without
/// chrono's format interpreter (which re-parses the format string for every event). `None`
/// for anything else, leap seconds included: the general formats decide those.
fn parse_plain_iso(s: &[u8]) -> Option<DateTime<Utc>> {
    let s = s.strip_suffix(b"Z").unwrap_or(s);
    if s.len() < 19 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    if s[10] != b'T' && s[10] != b' ' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        s[range].iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let fraction = &s[19..];
    let micros = match fraction.split_first() {
        None => 0,
        Some((b'.', digits)) if (1..=9).contains(&digits.len()) => {
            let mut micros = 0u32;
            for (i, &b) in digits.iter().enumerate() {
                if !b.is_ascii_digit() {
                    return None;
                }
                if i < 6 {
                    micros = micros * 10 + u32::from(b - b'0');
                }
            }
            micros * 10u32.pow(6u32.saturating_sub(digits.len() as u32))
        }
        Some(_) => return None,
    };
    if hour >= 24 || minute >= 60 || second >= 60 {
        return None;
    }
    let date = civil_date(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(
        hour * 3_600 + minute * 60 + second,
        micros * 1_000,
    )?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// A proleptic Gregorian date; `None` if there is no such date. Built from the day of the year,
/// which is how chrono stores a date: its month-and-day constructor and its constructor from a
/// timestamp each cost more than the rest of the parse.
fn civil_date(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    const DAYS_BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days {
        return None;
    }
    let before = DAYS_BEFORE_MONTH.get(month as usize - 1)?;
    NaiveDate::from_yo_opt(year, before + day + u32::from(leap && month > 2))
}

/// Python's strptime directives that chrono spells differently: `%f` reads microseconds.
fn chrono_format(fmt: &str) -> String {
    fmt.replace(".%f", "%.f").replace("%f", "%6f")
}

/// `datetime.strptime(s, fmt)` and `parse_time(s, fmt)`: the whole string must match; a
/// format without an offset gives UTC, a format without a time gives midnight.
pub(crate) fn strptime(text: &str, fmt: &str) -> Result<DateTime<Utc>, EvalError> {
    let cfmt = chrono_format(fmt);
    let mismatch = |e: chrono::ParseError| {
        value_error(format!(
            "time data {text:?} does not match format {fmt:?} ({e})"
        ))
    };
    // Python's %z accepts `Z`; chrono's does not.
    let with_offset = match text.strip_suffix('Z') {
        Some(rest) if cfmt.contains("%z") => format!("{rest}+0000"),
        _ => text.to_owned(),
    };
    match DateTime::parse_from_str(&with_offset, &cfmt) {
        Ok(d) => return Ok(truncate_micros(d.to_utc())),
        Err(e) if e.kind() != ParseErrorKind::NotEnough => return Err(mismatch(e)),
        Err(_) => {}
    }
    match NaiveDateTime::parse_from_str(text, &cfmt) {
        Ok(d) => return Ok(truncate_micros(d.and_utc())),
        Err(e) if e.kind() != ParseErrorKind::NotEnough => return Err(mismatch(e)),
        Err(_) => {}
    }
    NaiveDate::parse_from_str(text, &cfmt)
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(mismatch)
}

/// `datetime.fromtimestamp(n)` in UTC, rounding floats to the microsecond half to even as
/// Python does.
pub(crate) fn from_timestamp(v: &Value) -> Result<Value, EvalError> {
    let out_of_range = || overflow("timestamp out of range");
    let (secs, micros) = match v {
        Value::Null => return Err(null_operand("fromtimestamp()")),
        Value::Str(_) => return Err(type_error("fromtimestamp() needs a number, not 'str'")),
        other => match other.as_number() {
            Some(Number::Int(i)) => (i, 0),
            Some(Number::Float(f)) => {
                if !f.is_finite() {
                    return Err(value_error(
                        "cannot convert a non-finite float to a timestamp",
                    ));
                }
                let whole = f.trunc();
                let mut us = ((f - whole) * 1e6).round_ties_even();
                let mut secs = whole;
                if us >= 1e6 {
                    secs += 1.0;
                    us -= 1e6;
                } else if us < 0.0 {
                    secs -= 1.0;
                    us += 1e6;
                }
                if secs.abs() >= 9.2e18 {
                    return Err(out_of_range());
                }
                (secs as i64, us as u32)
            }
            None => {
                return Err(type_error(format!(
                    "fromtimestamp() needs a number, not '{}'",
                    other.type_name()
                )));
            }
        },
    };
    DateTime::from_timestamp(secs, micros * 1_000)
        .map(Value::DateTime)
        .ok_or_else(out_of_range)
}

/// `timedelta(days, seconds, microseconds, milliseconds, minutes, hours, weeks)`.
pub(crate) fn make_timedelta(args: &[Value]) -> Result<Value, EvalError> {
    const UNITS: [i64; 7] = [
        86_400_000_000,
        1_000_000,
        1,
        1_000,
        60_000_000,
        3_600_000_000,
        604_800_000_000,
    ];
    let mut exact: i128 = 0;
    let mut approx = 0.0_f64;
    let mut any_float = false;
    for (arg, unit) in args.iter().zip(UNITS) {
        match arg.as_number() {
            Some(Number::Int(i)) => exact += i128::from(i) * i128::from(unit),
            Some(Number::Float(f)) => {
                any_float = true;
                approx += f * unit as f64;
            }
            None if arg.is_null() => return Err(null_operand("timedelta()")),
            None => {
                return Err(type_error(format!(
                    "unsupported type for timedelta component: {}",
                    arg.type_name()
                )));
            }
        }
    }
    let total = if any_float {
        let t = exact as f64 + approx;
        if !t.is_finite() {
            return Err(overflow("timedelta out of range"));
        }
        t.round_ties_even() as i128
    } else {
        exact
    };
    // Python's limit is ±999999999 days; i64 microseconds stop earlier, near 106 million days.
    i64::try_from(total)
        .map(|us| Value::TimeDelta(TimeDelta::microseconds(us)))
        .map_err(|_| overflow("timedelta out of range"))
}

fn int_arg(v: &Value, name: &str) -> Result<i64, EvalError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Null => Err(null_operand(name)),
        other => Err(type_error(format!(
            "{name} must be an integer, not '{}'",
            other.type_name()
        ))),
    }
}

/// `datetime(year, month, day, hour, minute, second, microsecond)` in UTC; missing parts 0.
pub(crate) fn make_datetime(args: &[Value]) -> Result<Value, EvalError> {
    let names = [
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "microsecond",
    ];
    let mut parts = [0_i64; 7];
    for ((arg, name), part) in args.iter().zip(names).zip(parts.iter_mut()) {
        *part = int_arg(arg, name)?;
    }
    let [y, mo, d, h, mi, s, us] = parts;
    let small = |v: i64| u32::try_from(v).ok();
    let date = i32::try_from(y)
        .ok()
        .zip(small(mo))
        .zip(small(d))
        .and_then(|((y, mo), d)| NaiveDate::from_ymd_opt(y, mo, d))
        .ok_or_else(|| value_error(format!("invalid date {y}-{mo}-{d}")))?;
    let time = small(h)
        .zip(small(mi))
        .zip(small(s))
        .zip(small(us))
        .and_then(|(((h, mi), s), us)| chrono::NaiveTime::from_hms_micro_opt(h, mi, s, us))
        .filter(|_| us < 1_000_000 && s < 60)
        .ok_or_else(|| value_error(format!("invalid time {h}:{mi}:{s}.{us}")))?;
    Ok(Value::DateTime(date.and_time(time).and_utc()))
}

pub(crate) fn utc_now() -> Value {
    Value::DateTime(truncate_micros(Utc::now()))
}

#[cfg(test)]
mod tests {
    use super::super::EvalErrorKind as K;
    use super::super::testkit::dt;
    use super::*;

    fn parsed(s: &str) -> Value {
        match parse_time(s) {
            Ok(d) => Value::DateTime(d),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parse_time_accepts_iso_and_common_formats() {
        let want = dt("2018-03-07T10:00:00Z");
        for s in [
            "2018-03-07T10:00:00Z",
            "2018-03-07T10:00:00+00:00",
            "2018-03-07 10:00:00",
            "2018-03-07T10:00:00",
            "2018-03-07 12:00:00+02:00",
            "2018-03-07T12:00:00+0200",
            "2018-03-07 10:00",
            "2018-03-07T10:00:00.000Z",
            "2018/03/07 10:00:00",
            "03/07/2018 10:00:00",
            "Wed, 07 Mar 2018 10:00:00 +0000",
            " 2018-03-07 10:00:00 UTC",
            "2018-03-07T10:00:00\t",
            "\u{3000}2018-03-07T10:00:00\u{2003}",
        ] {
            assert_eq!(parsed(s), want, "{s}");
        }
        assert_eq!(parsed("2018-03-07"), dt("2018-03-07T00:00:00Z"));
        assert_eq!(
            parsed("2018-03-07 10:00:00.123456"),
            dt("2018-03-07T10:00:00.123456Z")
        );
        assert_eq!(
            parsed("2018-03-07T10:00:00.1234567Z"),
            dt("2018-03-07T10:00:00.123456Z")
        );
        let err = parse_time("yesterday").map_err(|e| e.kind);
        assert_eq!(err, Err(K::ValueError));
    }

    #[test]
    fn civil_date_agrees_with_chrono_on_every_day_and_rejects_the_rest() {
        for year in (0..=2500).chain(9990..=9999) {
            for month in 0..=13 {
                for day in 0..=32 {
                    assert_eq!(
                        civil_date(year, month, day),
                        NaiveDate::from_ymd_opt(year, month, day),
                        "{year}-{month}-{day}"
                    );
                }
            }
        }
    }

    #[test]
    fn plain_iso_fast_path_agrees_with_the_general_formats() {
        for s in [
            "2018-01-01T00:01:34",
            "2018-01-01 00:01:34",
            "2018-12-31T23:59:59Z",
            "2016-02-29T12:00:00.5",
            "2018-03-07T10:00:00.000001",
            "2018-03-07T10:00:00.123456789",
            "0001-01-01T00:00:00",
            "0000-01-01T00:00:00",
            "1969-12-31T23:59:59.999999",
            "1900-03-01T00:00:00",
            "2000-02-29T23:59:59",
            "9999-12-31T23:59:59.999999",
        ] {
            let general =
                NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                    .map(|d| truncate_micros(d.and_utc()));
            assert_eq!(parse_plain_iso(s.as_bytes()), general.ok(), "{s}");
        }
        for s in [
            "2018-02-30T00:00:00",
            "1900-02-29T00:00:00",
            "2018-00-01T00:00:00",
            "2018-01-00T00:00:00",
            "2018-01-01T00:60:00",
            "2018-13-01T00:00:00",
            "2018-01-01T24:00:00",
            "2018-01-01T00:00:60",
            "2018-01-01T00:00:00.",
            "2018-01-01T00:00:00.1234567890",
            "2018-01-01T00:00:00+02:00",
            "2018-01-01X00:00:00",
            "2018-1-01T00:00:00",
            "+2018-01-01T00:00:00",
        ] {
            assert_eq!(parse_plain_iso(s.as_bytes()), None, "{s}");
        }
        assert_eq!(
            parsed("2018-01-01T00:00:00+02:00"),
            dt("2017-12-31T22:00:00Z")
        );
    }

    #[test]
    fn strptime_with_python_formats() {
        let p = |s: &str, f: &str| strptime(s, f).map(Value::DateTime).map_err(|e| e.kind);
        assert_eq!(
            p("2018-03-07 10:00:00", "%Y-%m-%d %H:%M:%S"),
            Ok(dt("2018-03-07T10:00:00Z"))
        );
        assert_eq!(p("07/03/2018", "%d/%m/%Y"), Ok(dt("2018-03-07T00:00:00Z")));
        assert_eq!(
            p("2018-03-07T10:00:00.5Z", "%Y-%m-%dT%H:%M:%S.%f%z"),
            Ok(dt("2018-03-07T10:00:00.5Z"))
        );
        assert_eq!(
            p("20180307 100000 123456", "%Y%m%d %H%M%S %f"),
            Ok(dt("2018-03-07T10:00:00.123456Z"))
        );
        assert_eq!(
            p("2018-03-07 12:00 +0200", "%Y-%m-%d %H:%M %z"),
            Ok(dt("2018-03-07T10:00:00Z"))
        );
        assert_eq!(p("2018-03-07", "%d/%m/%Y"), Err(K::ValueError));
        assert_eq!(
            p("2018-03-07 10:00:00 extra", "%Y-%m-%d %H:%M:%S"),
            Err(K::ValueError)
        );
    }

    #[test]
    fn timestamps() {
        let f = |v: Value| from_timestamp(&v).map_err(|e| e.kind);
        assert_eq!(f(Value::Int(1_520_416_800)), Ok(dt("2018-03-07T10:00:00Z")));
        assert_eq!(
            f(Value::Float(1_520_416_800.5)),
            Ok(dt("2018-03-07T10:00:00.5Z"))
        );
        assert_eq!(f(Value::Float(-0.5)), Ok(dt("1969-12-31T23:59:59.5Z")));
        assert_eq!(f(Value::Float(f64::NAN)), Err(K::ValueError));
        assert_eq!(f(Value::Int(i64::MAX)), Err(K::Overflow));
        assert_eq!(f(Value::Null), Err(K::NullOperand));
        assert_eq!(f(Value::str("1")), Err(K::TypeError));
    }

    #[test]
    fn timedeltas_and_datetimes() {
        let zero = Value::Int(0);
        let mut args = vec![zero; 7];
        args[0] = Value::Int(1);
        args[5] = Value::Float(1.5);
        args[3] = Value::Int(1);
        let want = TimeDelta::days(1) + TimeDelta::minutes(90) + TimeDelta::milliseconds(1);
        assert_eq!(make_timedelta(&args), Ok(Value::TimeDelta(want)));
        args[6] = Value::Int(i64::MAX);
        assert_eq!(make_timedelta(&args).map_err(|e| e.kind), Err(K::Overflow));
        args[6] = Value::str("1");
        assert_eq!(make_timedelta(&args).map_err(|e| e.kind), Err(K::TypeError));

        let ymd = [Value::Int(2018), Value::Int(3), Value::Int(7)];
        assert_eq!(make_datetime(&ymd), Ok(dt("2018-03-07T00:00:00Z")));
        let full: Vec<Value> = [2018, 3, 7, 10, 5, 6, 7]
            .into_iter()
            .map(Value::Int)
            .collect();
        assert_eq!(make_datetime(&full), Ok(dt("2018-03-07T10:05:06.000007Z")));
        let bad = [Value::Int(2018), Value::Int(2), Value::Int(30)];
        assert_eq!(make_datetime(&bad).map_err(|e| e.kind), Err(K::ValueError));
        let bad = [Value::Int(2018), Value::Float(2.0), Value::Int(3)];
        assert_eq!(make_datetime(&bad).map_err(|e| e.kind), Err(K::TypeError));
        assert!(matches!(utc_now(), Value::DateTime(_)));
    }
}
