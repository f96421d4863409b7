//! [`DeviceSettings`]: what the device metadata of a session keeps of the client's address.

use super::ConfigError;
use super::env::Env;

/// How much of the client's IP address a session's device metadata keeps
/// (`SESSION_DEVICE_IP`).
///
/// The address is shown in the devices list (session stats) so a user can tell their sessions
/// apart; it is never an input to an authorization decision. Keeping less of it keeps less
/// personal data at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeviceIp {
    /// No address is kept (`off`).
    Off,
    /// The network only: the /24 of an IPv4 address, the /48 of an IPv6 one (`truncated`,
    /// the default), written as a CIDR block such as `203.0.113.0/24`.
    #[default]
    Truncated,
    /// The whole address (`full`).
    Full,
}

/// The settings of the device metadata captured at login: see
/// [`DeviceInfo`](crate::store::DeviceInfo).
///
/// ```
/// use tower_jwt_session::config::{DeviceIp, DeviceSettings};
///
/// assert_eq!(DeviceSettings::default().ip(), DeviceIp::Truncated);
/// assert_eq!(DeviceSettings::default().with_ip(DeviceIp::Off).ip(), DeviceIp::Off);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct DeviceSettings {
    ip: DeviceIp,
}

impl DeviceSettings {
    /// How much of the client's address is kept. The default is [`DeviceIp::Truncated`];
    /// [`DeviceIp::Full`] keeps personal data a devices list rarely needs.
    pub fn with_ip(mut self, ip: DeviceIp) -> Self {
        self.ip = ip;
        self
    }

    /// How much of the client's address is kept.
    pub fn ip(&self) -> DeviceIp {
        self.ip
    }

    /// `SESSION_DEVICE_IP`: `off`, `truncated` or `full`.
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        if let Some(ip) = env.choice(
            "SESSION_DEVICE_IP",
            &[
                ("off", DeviceIp::Off),
                ("truncated", DeviceIp::Truncated),
                ("full", DeviceIp::Full),
            ],
            "`off`, `truncated` or `full`",
        )? {
            settings.ip = ip;
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ENV_VARS, SessionConfig};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn from(ip: Option<&str>) -> Result<SessionConfig, ConfigError> {
        SessionConfig::from_lookup(|name| match name {
            "JWT_SECRET" => Some(SECRET.to_owned()),
            "SESSION_DEVICE_IP" => ip.map(str::to_owned),
            _ => None,
        })
    }

    #[test]
    fn the_device_ip_setting_defaults_to_truncated_and_names_a_bad_value() {
        assert_eq!(from(None).unwrap().device().ip(), DeviceIp::Truncated);
        for (text, want) in [
            ("off", DeviceIp::Off),
            ("Truncated", DeviceIp::Truncated),
            (" full ", DeviceIp::Full),
        ] {
            assert_eq!(from(Some(text)).unwrap().device().ip(), want, "{text}");
        }
        let err = from(Some("partial")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name: "SESSION_DEVICE_IP", value, .. } if value == "partial"),
            "{err}"
        );
        assert!(
            err.to_string().contains("`off`, `truncated` or `full`"),
            "{err}"
        );
        assert!(ENV_VARS.contains(&"SESSION_DEVICE_IP"));
        let config = SessionConfig::new(SECRET)
            .unwrap()
            .with_device(DeviceSettings::default().with_ip(DeviceIp::Full));
        assert_eq!(config.device().ip(), DeviceIp::Full);
    }
}
