//! What handlers read from a request and write into a response: JSON bodies in and out,
//! timestamps, percent-decoding, request ids. Below `http`, `tasks`, `health` and the
//! transport, and imports none of them.
//!
//! Invariants a reviewer can check in this file alone:
//! - a body is never read past `BODY_LIMIT` + 1 bytes (the transport never passes on more, and
//!   gives the length it declared when it read none of it);
//! - a body is judged in the contract's order: size (413), emptiness, `Content-Type` (415),
//!   then syntax (400).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rouille::{Request, Response};
use serde::Serialize;

use crate::error::ApiError;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 65_536;

/// A JSON response.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => Response::from_data("application/json", body).with_status_code(status),
        Err(e) => ApiError::Internal(format!("serialising a response: {e}")).to_response("-"),
    }
}

/// Reads a JSON body: `Ok(None)` when there are no body bytes at all. A body the transport did
/// not read, being too large, is known by its `Content-Length`.
pub fn read_json(request: &Request) -> Result<Option<serde_json::Value>, ApiError> {
    if request.header("Content-Length").and_then(|v| v.parse::<usize>().ok()).is_some_and(|len| len > BODY_LIMIT) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = Vec::new();
    if let Some(data) = request.data() {
        data.take(BODY_LIMIT as u64 + 1).read_to_end(&mut body).map_err(|_| ApiError::InvalidJson)?;
    }
    if body.len() > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge);
    }
    if body.is_empty() {
        return Ok(None);
    }
    if !request.header("Content-Type").is_some_and(is_json_media_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(&body).map(Some).map_err(|_| ApiError::InvalidJson)
}

/// `application/json` or any `type/subtype+json`, parameters allowed.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, subtype)) => {
            !kind.is_empty() && (essence == "application/json" || (subtype.len() > 5 && subtype.ends_with("+json")))
        }
        None => false,
    }
}

/// Decodes `%XX` escapes (and nothing else); `None` if an escape is malformed.
pub fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The caller's `X-Request-Id` if it is 1 to 128 of `[A-Za-z0-9._-]`, else a new one.
pub fn request_id(given: Option<&str>) -> String {
    let valid = |id: &str| {
        (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    match given {
        Some(id) if valid(id) => id.to_owned(),
        _ => new_request_id(),
    }
}

/// A fresh request id: 16 hex digits.
fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS; hashing a counter gives unique, unguessable ids.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

/// A `timestamptz`, serialised as RFC 3339 in UTC with six fractional digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 27];
        let text =
            rfc3339(self.0, &mut buf).ok_or_else(|| serde::ser::Error::custom("timestamp outside years 0-9999"))?;
        serializer.serialize_str(text)
    }
}

/// `2026-01-08T10:00:00.123456Z`, written into `buf` without allocating (a page of tasks has
/// two per task); `None` outside the years 0000-9999. Civil-from-days after H. Hinnant.
pub fn rfc3339(time: SystemTime, buf: &mut [u8; 27]) -> Option<&str> {
    let micros: i64 = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_micros()).ok()?,
    };
    let (days, micros_of_day) = (micros.div_euclid(86_400_000_000), micros.rem_euclid(86_400_000_000));
    let secs_of_day = micros_of_day / 1_000_000;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    *buf = *b"0000-00-00T00:00:00.000000Z";
    let fields = [
        (0, 4, year),
        (5, 2, month),
        (8, 2, day),
        (11, 2, secs_of_day / 3600),
        (14, 2, secs_of_day / 60 % 60),
        (17, 2, secs_of_day % 60),
        (20, 6, micros_of_day % 1_000_000),
    ];
    for (at, width, mut value) in fields {
        for digit in buf[at..at + width].iter_mut().rev() {
            *digit = b'0' + u8::try_from(value % 10).ok()?;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).ok()
}

/// An RFC 3339 date-time (`2026-01-08T10:00:00Z`, `2026-01-08T12:00:00.5+02:00`; `T` and `Z`
/// in either case; fractions beyond microseconds are cut), or a date `YYYY-MM-DD`, meaning its
/// midnight in UTC. `None` for anything else, and for an instant `rfc3339` cannot write back.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let number = |at: usize, len: usize| -> Option<i64> {
        let digits = b.get(at..at + len)?;
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let separated = |pairs: &[(usize, u8)]| pairs.iter().all(|&(at, byte)| b.get(at) == Some(&byte));
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    if !separated(&[(4, b'-'), (7, b'-')])
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
    {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    if b.len() > 10 {
        let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
        if !matches!(b[10], b'T' | b't')
            || !separated(&[(13, b':'), (16, b':')])
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut at = 19;
        let mut fraction = 0;
        if b.get(at) == Some(&b'.') {
            let digits = b[at + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return None;
            }
            fraction = number(at + 1, digits.min(6))? * 10_i64.pow(6 - digits.min(6) as u32);
            at += 1 + digits;
        }
        let offset = match &b[at..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (hours, minutes) = (number(at + 1, 2)?, number(at + 4, 2)?);
                if hours > 23 || minutes > 59 {
                    return None;
                }
                (hours * 60 + minutes) * 60_000_000 * if *sign == b'+' { 1 } else { -1 }
            }
            _ => return None,
        };
        micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction - offset;
    }
    let time = match u64::try_from(micros) {
        Ok(after) => UNIX_EPOCH.checked_add(Duration::from_micros(after))?,
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_micros(micros.unsigned_abs()))?,
    };
    rfc3339(time, &mut [0; 27]).map(|_| time)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (after H. Hinnant).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7), for the `Date` header.
pub fn http_date(time: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut buf = [0u8; 27];
    let (Some(text), Ok(since)) = (rfc3339(time, &mut buf), time.duration_since(UNIX_EPOCH)) else {
        return String::new();
    };
    let weekday = WEEKDAYS.get(usize::try_from(since.as_secs() / 86_400 % 7).unwrap_or(0)).unwrap_or(&"");
    let month = text[5..7].parse::<usize>().ok().and_then(|m| MONTHS.get(m.wrapping_sub(1))).unwrap_or(&"");
    format!("{weekday}, {} {month} {} {} GMT", &text[8..10], &text[..4], &text[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in
            ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json"]
        {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in ["text/plain", "application/jsonx", "json", "application/+json", "", "multipart/form-data"] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb"), Some(b"a/b".to_vec()));
        assert_eq!(percent_decode("%e2%82%ac"), Some("€".as_bytes().to_vec()));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("a%+1"), None);
        assert_eq!(percent_decode("a+b"), Some(b"a+b".to_vec()));
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(1_796_396_729)), "Fri, 04 Dec 2026 15:05:29 GMT");
    }

    #[test]
    fn timestamps_are_read_as_rfc3339_date_times_or_dates() {
        let read = |text: &str| parse_timestamp(text).and_then(|t| rfc3339(t, &mut [0; 27]).map(str::to_owned));
        let cases = [
            ("2026-01-08T10:00:00Z", "2026-01-08T10:00:00.000000Z"),
            ("2026-01-08t10:00:00z", "2026-01-08T10:00:00.000000Z"),
            ("2026-01-08T10:00:00.123456Z", "2026-01-08T10:00:00.123456Z"),
            ("2026-01-08T10:00:00.5Z", "2026-01-08T10:00:00.500000Z"),
            ("2026-01-08T10:00:00.123456789Z", "2026-01-08T10:00:00.123456Z"),
            ("2026-01-08T12:30:00+02:30", "2026-01-08T10:00:00.000000Z"),
            ("2026-01-08T05:00:00-05:00", "2026-01-08T10:00:00.000000Z"),
            ("2026-01-01T01:00:00+02:00", "2025-12-31T23:00:00.000000Z"),
            ("2026-01-08T10:00:00-00:00", "2026-01-08T10:00:00.000000Z"),
            ("2026-01-08", "2026-01-08T00:00:00.000000Z"),
            ("2024-02-29", "2024-02-29T00:00:00.000000Z"),
            ("2000-02-29", "2000-02-29T00:00:00.000000Z"),
            ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
            ("0000-01-01", "0000-01-01T00:00:00.000000Z"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(read(text).as_deref(), Some(expected), "{text}");
        }
        let bad = [
            "",
            "2026",
            "2026-1-08",
            "2026-01-8",
            "2026/01/08",
            "2026-00-10",
            "2026-13-01",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-01-08T",
            "2026-01-08 10:00:00Z",
            "2026-01-08T10:00Z",
            "2026-01-08T24:00:00Z",
            "2026-01-08T10:60:00Z",
            "2026-01-08T10:00:60Z",
            "2026-01-08T10:00:00",
            "2026-01-08T10:00:00.Z",
            "2026-01-08T10:00:00.1234567890Z",
            "2026-01-08T10:00:00+0200",
            "2026-01-08T10:00:00+24:00",
            "2026-01-08T10:00:00Z ",
            " 2026-01-08",
            "+2026-01-08",
            "２０２６-01-08",
            "9999-12-31T23:00:00-05:00",
            "0000-01-01T00:00:00+00:01",
            "2026-01-08Z",
            "2026-01-08T10:00:00.+01:00",
            "now",
            "-001-01-01",
        ];
        for text in bad {
            assert_eq!(read(text), None, "{text:?}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_six_digits() {
        let text = |time: SystemTime| rfc3339(time, &mut [0; 27]).map(str::to_owned);
        let at = |micros: u64| text(UNIX_EPOCH + Duration::from_micros(micros)).unwrap();
        assert_eq!(at(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_767_866_400_123_456), "2026-01-08T10:00:00.123456Z");
        assert_eq!(at(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(4_107_542_399_999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(at(253_402_300_799_999_999), "9999-12-31T23:59:59.999999Z");
        assert_eq!(text(UNIX_EPOCH - Duration::from_micros(1)).unwrap(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(text(UNIX_EPOCH - Duration::from_secs(62_167_219_200)).unwrap(), "0000-01-01T00:00:00.000000Z");
        assert_eq!(text(UNIX_EPOCH + Duration::from_micros(253_402_300_800_000_000)), None, "year 10000");
        assert_eq!(text(UNIX_EPOCH - Duration::from_secs(62_167_219_201)), None, "year -1");
    }
}
