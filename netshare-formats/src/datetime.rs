//! Civil dates in UTC: the one home of the date arithmetic that the NetFlow dialects' text
//! times need (H. Hinnant's days-from-civil algorithms, proleptic Gregorian calendar).

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-mm-dd HH:MM:SS[.fff]` (or with `T`) as µs since the epoch, UTC. Digits beyond the
/// sixth decimal are dropped. `None` for anything else.
pub fn parse_datetime_us(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut frac_us = 0i64;
    if b.len() > 19 {
        if b[19] != b'.' {
            return None;
        }
        let digits = s.get(20..)?;
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        for (i, c) in digits.bytes().take(6).enumerate() {
            frac_us += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000) + frac_us)
}

/// `YYYY-mm-dd HH:MM:SS` (UTC) of a time in µs, with `frac_digits` (0, 3 or 6) decimals.
pub fn format_datetime(time_us: i64, frac_digits: u32) -> String {
    let secs = time_us.div_euclid(1_000_000);
    let micros = time_us.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let base = format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    match frac_digits {
        0 => base,
        3 => format!("{base}.{:03}", micros / 1000),
        _ => format!("{base}.{micros:06}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_utc_microseconds() {
        assert_eq!(parse_datetime_us("1970-01-01 00:00:00"), Some(0));
        // date -u -d '2016-04-11 00:03:17' +%s = 1460332997
        assert_eq!(
            parse_datetime_us("2016-04-11 00:03:17"),
            Some(1_460_332_997_000_000)
        );
        assert_eq!(
            parse_datetime_us("2017-03-15T00:01:16.632"),
            Some(1_489_536_076_632_000)
        );
        assert_eq!(parse_datetime_us("2017-03-15 00:01:16."), None);
        assert_eq!(parse_datetime_us("2017-13-15 00:01:16"), None);
        assert_eq!(parse_datetime_us("2017-03-15 00-01-16"), None);
        assert_eq!(parse_datetime_us("not a date at all!!"), None);
    }

    #[test]
    fn civil_days_round_trip_across_four_centuries() {
        // 1600-03-01 .. 2400-02-29, both directions, every day.
        let (lo, hi) = (days_from_civil(1600, 3, 1), days_from_civil(2400, 2, 29));
        for days in lo..=hi {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn formatted_times_parse_back() {
        for t in [0i64, 1_460_332_997_123_456, 951_782_400_000_001] {
            assert_eq!(parse_datetime_us(&format_datetime(t, 6)), Some(t));
        }
        assert_eq!(
            format_datetime(1_489_536_076_632_000, 3),
            "2017-03-15 00:01:16.632"
        );
    }
}
