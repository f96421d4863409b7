//! Durations as people write them: `500ms`, `90s`, `15m`, `2h`, `30d`, `1h 30m`.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a duration in the grammar of the `humantime` crate (a number and a unit, repeated).
    #[error("{0}")]
    Malformed(String),
    /// Months or years: their length varies, and `M` is one key away from `m`.
    #[error("months and years are not accepted; write days, e.g. 30d")]
    CalendarUnit,
}

/// Parses a duration: one or more spans of a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`,
/// and their long names such as `min` or `days`), e.g. `500ms`, `90s`, `15m`, `2h`, `30d`,
/// `1h 30m`. The grammar is the `humantime` crate's, without months and years. A bare number
/// has no unit and is refused.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::parse_duration;
///
/// assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
/// assert!(parse_duration("15").is_err());
/// assert!(parse_duration("15M").is_err()); // months: refused
/// ```
///
/// # Errors
/// [`DurationError`] for anything else: a missing unit, a sign, an unknown unit, an overflow,
/// months or years.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let parsed = humantime::parse_duration(input.trim())
        .map_err(|e| DurationError::Malformed(e.to_string()))?;
    if units(input).any(is_calendar_unit) {
        return Err(DurationError::CalendarUnit);
    }
    Ok(parsed)
}

/// The alphabetic runs of `input`: the units, once `humantime` has accepted it.
fn units(input: &str) -> impl Iterator<Item = &str> {
    input
        .split(|c: char| !c.is_alphabetic())
        .filter(|unit| !unit.is_empty())
}

fn is_calendar_unit(unit: &str) -> bool {
    matches!(
        unit,
        "months" | "month" | "M" | "years" | "year" | "yr" | "yrs" | "y"
    )
}

/// A duration for messages, in the units the variables take, so an operator can paste it back:
/// `10m`, `1h 30m`, `30d`, `1500ms`. Never months or years, which [`parse_duration`] refuses.
pub(crate) fn show(d: Duration) -> String {
    const UNITS: [(u128, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    let mut left = d.as_millis();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut parts = Vec::new();
    for (size, unit) in UNITS {
        if left >= size {
            parts.push(format!("{}{unit}", left / size));
            left %= size;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a message shows reads back as the same duration, in the variables' own units.
    #[test]
    fn shown_durations_parse_back() {
        for (d, shown) in [
            (Duration::from_secs(0), "0s"),
            (Duration::from_millis(1500), "1s 500ms"),
            (Duration::from_secs(90), "1m 30s"),
            (Duration::from_secs(2 * 3600), "2h"),
            (Duration::from_secs(30 * 86_400), "30d"),
            (
                Duration::from_secs(118 * 86_400 + 16 * 3600 + 19 * 60 + 12),
                "118d 16h 19m 12s",
            ),
        ] {
            assert_eq!(show(d), shown);
            assert_eq!(parse_duration(&show(d)), Ok(d), "{shown}");
        }
    }
}
