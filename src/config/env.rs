//! Reading variables: the one place that turns `NAME=value` text into typed settings, so every
//! component parses lists, durations, numbers and flags the same way and names the variable,
//! the value and the expected form when it cannot.

use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;
use super::duration::parse_duration;

/// The expected form of every duration variable.
pub(crate) const DURATION_FORM: &str = "a duration such as 500ms, 90s, 15m, 2h or 30d";

/// Variables looked up through a closure (the process environment, or a map in tests). An
/// empty or blank value counts as unset, as most deployment tools write unset values that way.
pub(crate) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value of `name`, trimmed, or `None` when unset or blank.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` as it is (not trimmed: secrets are taken byte for byte), or `None`
    /// when unset or blank.
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A comma-separated list: entries trimmed, empty entries dropped. `None` when unset.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| split_list(&v))
    }

    /// A duration (`15m`); a bare number is refused.
    pub(crate) fn duration(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.get(name)
            .map(|v| parse_duration(&v).map_err(|_| invalid(name, v, DURATION_FORM)))
            .transpose()
    }

    /// A duration (`15m`), or a bare number of milliseconds (`900000`).
    pub(crate) fn duration_or_ms(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<Duration>, ConfigError> {
        self.get(name)
            .map(|v| match v.parse::<u64>() {
                Ok(ms) => Ok(Duration::from_millis(ms)),
                Err(_) => parse_duration(&v).map_err(|_| invalid(name, v, expected)),
            })
            .transpose()
    }

    /// A whole number of at least 1.
    pub(crate) fn positive<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + From<u8>,
    {
        self.get(name)
            .map(|v| match v.parse::<T>() {
                Ok(n) if n >= T::from(1u8) => Ok(n),
                _ => Err(invalid(name, v, "a whole number of at least 1")),
            })
            .transpose()
    }

    /// A whole number, 0 included.
    pub(crate) fn count<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| invalid(name, v, "a whole number (0 or more)"))
            })
            .transpose()
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub(crate) fn flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        self.get(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(invalid(name, v, "`true` or `false`")),
            })
            .transpose()
    }

    /// One of `choices` (case-insensitive), as `(text, value)` pairs.
    pub(crate) fn choice<T: Copy>(
        &self,
        name: &'static str,
        choices: &[(&str, T)],
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|v| {
                choices
                    .iter()
                    .find(|(text, _)| text.eq_ignore_ascii_case(&v))
                    .map(|(_, value)| *value)
                    .ok_or_else(|| invalid(name, v, expected))
            })
            .transpose()
    }
}

/// Splits a comma-separated list: entries trimmed, empty entries dropped.
pub(crate) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn invalid(name: &'static str, value: String, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value,
        expected,
    }
}
