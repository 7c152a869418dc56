//! The time plan and apply run at: the system clock, or `PORTICO_NOW` (RFC 3339) for tests
//! and what-if questions ("what would a plan on 1 April revoke?"). Expiry dates are parsed
//! here too.

use jiff::Timestamp;

/// The environment variable that sets the clock.
pub const NOW_VAR: &str = "PORTICO_NOW";

/// The clock chosen at the edge ([`set`]): `None` is the system clock.
static CHOSEN: std::sync::OnceLock<Option<Timestamp>> = std::sync::OnceLock::new();

/// `PORTICO_NOW`, parsed, when set.
///
/// # Errors
/// A value that is not an RFC 3339 time or a date.
pub fn from_env() -> Result<Option<Timestamp>, String> {
    match std::env::var(NOW_VAR) {
        Ok(value) => parse(&value)
            .map(Some)
            .map_err(|e| format!("{NOW_VAR}: {e}")),
        Err(_) => Ok(None),
    }
}

/// Fixes the clock for this process: a time, or `None` for the system clock. The command
/// line does this once: read-only commands honour `PORTICO_NOW`; commands that write use
/// the system clock unless `apply --now` says otherwise (and history records it).
pub fn set(at: Option<Timestamp>) {
    let _ = CHOSEN.set(at);
}

/// Now: the clock fixed by [`set`]; where nothing fixed one (the library used directly),
/// `PORTICO_NOW` when set, else the system clock.
pub fn now() -> Timestamp {
    match CHOSEN.get() {
        Some(chosen) => chosen.unwrap_or_else(Timestamp::now),
        None => from_env().ok().flatten().unwrap_or_else(Timestamp::now),
    }
}

/// Parses an expiry: a date (`2027-03-31`, meaning the end of that day, UTC) or an RFC 3339
/// time (`2027-03-31T17:00:00+02:00`).
///
/// # Errors
/// What is wrong, in words.
pub fn parse(value: &str) -> Result<Timestamp, String> {
    let value = value.trim();
    let out_of_range = || {
        format!(
            "`{value}` is out of range: write a time between {FIRST_YEAR} and {LAST_YEAR} (leave `expires` out for access that does not end)"
        )
    };
    let at = if let Ok(date) = value.parse::<jiff::civil::Date>()
        && value.len() == 10
    {
        jiff::tz::TimeZone::UTC
            .to_timestamp(date.to_datetime(jiff::civil::time(23, 59, 59, 0)))
            .map_err(|_| out_of_range())?
    } else {
        value.parse::<Timestamp>().map_err(|_| {
            format!(
                "`{value}` is not a date (2027-03-31) or an RFC 3339 time (2027-03-31T17:00:00Z)"
            )
        })?
    };
    // Stored as `YYYY-MM-DDTHH:MM:SSZ`, which sorts as text only with four-digit years.
    let year = jiff::tz::TimeZone::UTC.to_datetime(at).year();
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Err(out_of_range());
    }
    Ok(at)
}

/// The first year a time may be in.
const FIRST_YEAR: i16 = 1970;
/// The last year a time may be in (9999's last day overflows with a time zone).
const LAST_YEAR: i16 = 9998;

/// Whether access that ends at `expires` has ended at `now` (both stored text). An expiry is
/// the last second access is valid: a date's 23:59:59 still counts.
pub fn expired(expires: &str, now: &str) -> bool {
    expires < now
}

/// The stored form: `YYYY-MM-DDTHH:MM:SSZ` (UTC), which sorts as text.
pub fn format(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// How a stored expiry reads in messages: the date alone when it is the end of a day.
pub fn display(stored: &str) -> String {
    stored
        .strip_suffix("T23:59:59Z")
        .map_or_else(|| stored.to_string(), str::to_string)
}

/// A stored time for people in an email: `2 December 2026, 14:05 UTC` (the stored text
/// itself when it does not parse).
pub fn for_people(stored: &str) -> String {
    stored
        .parse::<Timestamp>()
        .map(|t| t.strftime("%-d %B %Y, %H:%M UTC").to_string())
        .unwrap_or_else(|_| stored.to_string())
}

/// Whole days from `now` until `at` (negative when past).
pub fn days_until(now: Timestamp, at: Timestamp) -> i64 {
    (at.as_second() - now.as_second()).div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_outside_four_digit_years_are_refused_in_words() {
        for bad in ["9999-12-31", "0000-01-01T00:00:00+00:01", "1969-12-31"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("out of range"), "{bad}: {error}");
        }
        assert_eq!(format(parse("9998-12-31").unwrap()), "9998-12-31T23:59:59Z");
    }

    #[test]
    fn the_last_second_of_an_expiry_still_counts() {
        let end = format(parse("2027-03-31").unwrap());
        assert!(!expired(&end, "2027-03-31T23:59:59Z"));
        assert!(expired(&end, "2027-04-01T00:00:00Z"));
    }

    #[test]
    fn times_for_people_name_their_zone() {
        assert_eq!(
            for_people("2026-12-02T14:05:09Z"),
            "2 December 2026, 14:05 UTC"
        );
        assert_eq!(for_people("soon"), "soon");
    }

    #[test]
    fn dates_mean_the_end_of_the_day_utc() {
        assert_eq!(format(parse("2027-03-31").unwrap()), "2027-03-31T23:59:59Z");
        assert_eq!(
            format(parse("2027-03-31T17:00:00+02:00").unwrap()),
            "2027-03-31T15:00:00Z"
        );
        assert_eq!(display("2027-03-31T23:59:59Z"), "2027-03-31");
        assert_eq!(display("2027-03-31T15:00:00Z"), "2027-03-31T15:00:00Z");
        for bad in [
            "2027-02-30",
            "31/03/2027",
            "tomorrow",
            "2027-03-31T25:00:00Z",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let now = parse("2027-03-20T12:00:00Z").unwrap();
        assert_eq!(days_until(now, parse("2027-03-31").unwrap()), 11);
        assert_eq!(days_until(now, parse("2027-03-19").unwrap()), -1);
    }
}
