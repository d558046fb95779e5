//! The date-times and durations `kafka-consumer-groups.sh --reset-offsets` accepts:
//! `--to-datetime 'YYYY-MM-DDTHH:mm:SS.sss'` (local time unless followed by `Z` or `+HH:MM`)
//! and `--by-duration PnDTnHnMnS` (ISO-8601, as `java.time.Duration.parse` reads it).

use anyhow::{anyhow, bail};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch of a local wall-clock time (the system time zone, as Java's default).
fn local_to_epoch(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = (y - 1900) as i32;
    tm.tm_mon = (mo - 1) as i32;
    tm.tm_mday = d as i32;
    tm.tm_hour = h as i32;
    tm.tm_min = mi as i32;
    tm.tm_sec = s as i32;
    tm.tm_isdst = -1;
    // SAFETY: mktime reads and normalises the struct we own; it is thread-safe in glibc and musl.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t)
}

/// `YYYY-MM-DDTHH:mm:SS[.sss][Z|+HH:MM|-HH:MM|+HHMM]` to milliseconds since the epoch.
pub fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow!(
            "--to-datetime '{s}' is not a date-time like 2024-05-01T12:30:00.000 (optionally ending in Z or +HH:MM)"
        )
    };
    let t = s.trim();
    if t.len() < 19 || !t.is_char_boundary(19) {
        return Err(bad());
    }
    let (main, rest) = t.split_at(19);
    let b = main.as_bytes();
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| main[r].parse::<i64>().map_err(|_| bad());
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let max_day = match mo {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return Err(bad()),
    };
    if !(1..=max_day).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return Err(bad());
    }
    let (millis, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            let frac = &r[..digits];
            let ms: i64 = format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?;
            (ms, &r[digits..])
        }
        None => (0, rest),
    };
    let secs = match zone {
        "" => local_to_epoch(y, mo, d, h, mi, sec).ok_or_else(bad)?,
        "Z" | "z" => utc(y, mo, d, h, mi, sec),
        z => {
            let sign = match z.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let off = digits[..2].parse::<i64>().map_err(|_| bad())? * 3600
                + digits[2..].parse::<i64>().map_err(|_| bad())? * 60;
            utc(y, mo, d, h, mi, sec) - sign * off
        }
    };
    Ok(secs * 1000 + millis)
}

fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
}

/// An ISO-8601 duration `PnDTnHnMn.nS` (each part optional, at least one) to milliseconds.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("--by-duration '{s}' is not an ISO-8601 duration like PT30M, P1DT2H or PT0H30M0S");
    let t = s.trim().to_ascii_uppercase();
    let body = t.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match body.split_once('T') {
        Some((d, tm)) if !tm.is_empty() => (d, tm),
        Some(_) => return Err(bad()),
        None => (body, ""),
    };
    let mut ms: f64 = 0.0;
    let mut parts = 0;
    let mut eat = |text: &str, units: &[(char, f64)]| -> anyhow::Result<()> {
        let mut num = String::new();
        let mut next = 0;
        for c in text.chars() {
            if c.is_ascii_digit() || c == '.' || (c == '-' && num.is_empty()) {
                num.push(c);
                continue;
            }
            let pos = units.iter().position(|(u, _)| *u == c).filter(|&p| p >= next).ok_or_else(bad)?;
            let n: f64 = num.parse().map_err(|_| bad())?;
            if (c != 'S' && num.contains('.')) || n < 0.0 {
                return Err(bad());
            }
            ms += n * units[pos].1;
            parts += 1;
            next = pos + 1;
            num.clear();
        }
        if num.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    eat(date, &[('D', 86_400_000.0)])?;
    eat(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    if parts == 0 {
        bail!("--by-duration '{s}' has no amount (e.g. PT30M)");
    }
    Ok(ms.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000Z").unwrap(), 0);
        assert_eq!(parse_datetime("2021-11-25T20:00:00.000Z").unwrap(), 1_637_870_400_000);
        assert_eq!(parse_datetime("2021-11-25T20:00:00.5Z").unwrap(), 1_637_870_400_500);
        assert_eq!(parse_datetime("2021-11-25T21:00:00.000+01:00").unwrap(), 1_637_870_400_000);
        assert_eq!(parse_datetime("2021-11-25T19:00:00-0100").unwrap(), 1_637_870_400_000);
        assert_eq!(parse_datetime("2024-02-29T00:00:00Z").unwrap(), 1_709_164_800_000);
        for bad in ["2021-11-25", "2021-13-01T00:00:00", "2023-02-29T00:00:00", "2021-11-25 20:00:00", "x"] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT0H30M0S").unwrap(), 30 * 60_000);
        assert_eq!(parse_duration("P1DT2H").unwrap(), 26 * 3_600_000);
        assert_eq!(parse_duration("PT1.5S").unwrap(), 1500);
        assert_eq!(parse_duration("P2D").unwrap(), 2 * 86_400_000);
        for bad in ["P", "PT", "30M", "PT30", "PT1M2H", "P1H", "PT-1S", "PT1.5M"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
