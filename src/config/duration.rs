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

/// A duration for messages: `10m`, `1h 30m`, `30days`.
pub(crate) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
