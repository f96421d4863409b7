//! [`DeviceInfo`]: what a session remembers of the device that logged in, for the devices list.
//!
//! The label comes from the `User-Agent` header, matched against a handful of well-known
//! browser and platform families by substring: a full user-agent parser (and its regex
//! database) would cost more than a display label is worth, and an unknown agent is kept as
//! it came, cleaned and cut short. The address is the client IP as the rate limiter sees it
//! (trusted proxies honoured), kept whole, truncated to its network or not at all, as
//! [`DeviceIp`] says. Neither is ever an input to an authorization decision: a client chooses
//! its own `User-Agent`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::DeviceIp;

/// Longest label kept, in bytes. An unknown `User-Agent` is cut to this (on a character
/// boundary); a longer label given to [`DeviceInfo::new`] is cut the same way.
pub const MAX_DEVICE_LABEL_LEN: usize = 64;

/// Longest address text kept, in bytes: an IPv6 address with a prefix length fits.
const MAX_IP_LEN: usize = 64;

/// The device a session was started from, as shown in the devices list: a short label such as
/// `Firefox on Linux`, and the client's address as configured ([`DeviceIp`]). For display
/// only: never trust it for authorization, the client wrote the `User-Agent` itself.
///
/// ```
/// use tower_jwt_session::config::DeviceIp;
/// use tower_jwt_session::store::DeviceInfo;
///
/// let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
/// let device = DeviceInfo::capture(Some(ua), Some("203.0.113.7".parse()?), DeviceIp::Truncated);
/// assert_eq!(device.label(), "Firefox on Linux");
/// assert_eq!(device.ip(), Some("203.0.113.0/24"));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
///
/// Compact: one allocation for both texts, none when nothing is known, 16 bytes in the record
/// (every live session carries one). Serialized as `{"l": label, "ip": address}`, each left
/// out when empty.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct DeviceInfo {
    /// The label, then [`SEPARATOR`] and the address when there is one; `None` when both are
    /// unknown. Neither text can hold the separator: [`clean`] drops control characters.
    text: Option<Box<str>>,
}

/// Between the label and the address in [`DeviceInfo::text`].
const SEPARATOR: char = '\u{1}';

impl DeviceInfo {
    /// Device metadata from its parts, as given (an application that knows its devices better
    /// than a `User-Agent` does). Control characters are dropped and the label is cut to
    /// [`MAX_DEVICE_LABEL_LEN`] bytes, the address to 64.
    pub fn new(label: &str, ip: Option<&str>) -> Self {
        Self::from_clean(
            clean(label, MAX_DEVICE_LABEL_LEN),
            ip.map(|ip| clean(ip, MAX_IP_LEN)),
        )
    }

    /// What the login service records: the label from `user_agent`, and `ip` kept as `policy`
    /// says.
    pub fn capture(user_agent: Option<&str>, ip: Option<IpAddr>, policy: DeviceIp) -> Self {
        Self::from_clean(
            user_agent.map(label_of).unwrap_or_default(),
            ip.and_then(|ip| stored_ip(ip, policy)),
        )
    }

    fn from_clean(mut label: String, ip: Option<String>) -> Self {
        if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
            label.push(SEPARATOR);
            label.push_str(&ip);
        }
        Self {
            text: (!label.is_empty()).then(|| label.into_boxed_str()),
        }
    }

    /// The label: browser and platform (`Chrome on Android`), or the cleaned-up `User-Agent`
    /// when it is of no family known here; empty when none was sent.
    pub fn label(&self) -> &str {
        let text = self.text.as_deref().unwrap_or_default();
        text.split_once(SEPARATOR).map_or(text, |(label, _)| label)
    }

    /// The address as stored: whole, or its network as a CIDR block, or `None` when not kept.
    pub fn ip(&self) -> Option<&str> {
        self.text
            .as_deref()?
            .split_once(SEPARATOR)
            .map(|(_, ip)| ip)
    }
}

impl fmt::Debug for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceInfo")
            .field("label", &self.label())
            .field("ip", &self.ip())
            .finish()
    }
}

/// The serialized form, `{"l": label, "ip": address}`, each left out when empty or absent.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire<'a> {
    #[serde(default, rename = "l", skip_serializing_if = "str::is_empty", borrow)]
    label: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    ip: Option<std::borrow::Cow<'a, str>>,
}

impl serde::Serialize for DeviceInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            label: self.label().into(),
            ip: self.ip().map(Into::into),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceInfo {
    /// Cleaned and capped as [`DeviceInfo::new`]: what a store hands back is held to the same
    /// bounds as what a login captures.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        Ok(Self::new(&wire.label, wire.ip.as_deref()))
    }
}

/// The address as `policy` keeps it.
fn stored_ip(ip: IpAddr, policy: DeviceIp) -> Option<String> {
    let ip = ip.to_canonical();
    match policy {
        DeviceIp::Off => None,
        DeviceIp::Full => Some(ip.to_string()),
        _ => Some(match ip {
            IpAddr::V4(v4) => {
                let net = Ipv4Addr::from(u32::from(v4) & 0xffff_ff00);
                format!("{net}/24")
            }
            IpAddr::V6(v6) => {
                let net = Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1));
                format!("{net}/48")
            }
        }),
    }
}

/// Printable text only, cut to `max` bytes on a character boundary.
fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Browser families, the first that matches wins: the order matters, as Edge, Opera and
/// Samsung Internet also say `Chrome`, and Chrome also says `Safari`.
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Version/", "Safari"),
    ("curl/", "curl"),
];

/// Platform families, the first that matches wins: iPads say `Mac OS X`, Android and Chrome
/// OS say `Linux`.
const PLATFORMS: &[(&str, &str)] = &[
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
];

fn family(ua: &str, families: &[(&str, &'static str)]) -> Option<&'static str> {
    families
        .iter()
        .find(|(needle, _)| ua.contains(needle))
        .map(|(_, name)| *name)
}

/// The label of a `User-Agent`.
fn label_of(ua: &str) -> String {
    // `Version/` names Safari only beside `Safari/`; other agents use it for their own version.
    let browser = family(ua, BROWSERS).filter(|b| *b != "Safari" || ua.contains("Safari/"));
    match (browser, family(ua, PLATFORMS)) {
        (Some(browser), Some(platform)) => format!("{browser} on {platform}"),
        (Some(name), None) | (None, Some(name)) => name.to_owned(),
        (None, None) => clean(ua, MAX_DEVICE_LABEL_LEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_agents_get_a_short_label() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Mobile/15E148 Safari/604.1",
                "Chrome on iPadOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
                "Samsung Internet on Android",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.33 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 OPR/106.0",
                "Opera on Windows",
            ),
            ("curl/8.5.0", "curl"),
        ];
        for (ua, want) in cases {
            assert_eq!(label_of(ua), want, "{ua}");
        }
    }

    #[test]
    fn an_unknown_agent_is_kept_cleaned_and_cut_short() {
        assert_eq!(label_of("MyApp/1.2 (build 7)"), "MyApp/1.2 (build 7)");
        let long = format!("bot\u{7}\r\n{}", "é".repeat(100));
        let label = label_of(&long);
        assert!(label.len() <= MAX_DEVICE_LABEL_LEN, "{}", label.len());
        assert!(label.starts_with("botéé") && !label.chars().any(char::is_control));
        assert_eq!(
            DeviceInfo::capture(None, None, DeviceIp::Full),
            DeviceInfo::default()
        );
        let given = DeviceInfo::new(&"x".repeat(500), Some("  "));
        assert_eq!(given.label().len(), MAX_DEVICE_LABEL_LEN);
        assert_eq!(given.ip(), None);
    }

    #[test]
    fn the_address_is_kept_as_configured() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.9".parse().unwrap();
        let ip = |addr, policy| {
            DeviceInfo::capture(None, Some(addr), policy)
                .ip()
                .map(str::to_owned)
        };
        assert_eq!(
            ip(v4, DeviceIp::Truncated).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            ip(v6, DeviceIp::Truncated).as_deref(),
            Some("2001:db8:abcd::/48")
        );
        assert_eq!(
            ip(mapped, DeviceIp::Truncated).as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(ip(v4, DeviceIp::Full).as_deref(), Some("203.0.113.77"));
        assert_eq!(
            ip(v6, DeviceIp::Full).as_deref(),
            Some("2001:db8:abcd:12:1:2:3:4")
        );
        assert_eq!(ip(v4, DeviceIp::Off), None);
        assert_eq!(ip(v6, DeviceIp::Off), None);
    }

    #[test]
    fn it_serializes_compactly_and_reads_what_older_records_lack() {
        let device = DeviceInfo::new("Chrome on Linux", Some("203.0.113.0/24"));
        let json = serde_json::to_string(&device).unwrap();
        assert_eq!(json, r#"{"l":"Chrome on Linux","ip":"203.0.113.0/24"}"#);
        assert_eq!(serde_json::from_str::<DeviceInfo>(&json).unwrap(), device);
        assert_eq!(serde_json::to_string(&DeviceInfo::default()).unwrap(), "{}");
        assert_eq!(
            serde_json::from_str::<DeviceInfo>("{}").unwrap(),
            DeviceInfo::default()
        );
        let label_only = DeviceInfo::new("curl", None);
        assert_eq!((label_only.label(), label_only.ip()), ("curl", None));
        assert_eq!(
            serde_json::to_string(&label_only).unwrap(),
            r#"{"l":"curl"}"#
        );
        let ip_only = DeviceInfo::new("", Some("::/48"));
        assert_eq!((ip_only.label(), ip_only.ip()), ("", Some("::/48")));
        assert_eq!(
            serde_json::to_string(&ip_only).unwrap(),
            r#"{"ip":"::/48"}"#
        );
        // What a store hands back is held to the same bounds (and an escaped JSON string works).
        let odd: DeviceInfo = serde_json::from_str(&format!(
            r#"{{"l":"a\u0001b{}","ip":"x"}}"#,
            "z".repeat(100)
        ))
        .unwrap();
        assert_eq!(odd.label().len(), MAX_DEVICE_LABEL_LEN);
        assert!(odd.label().starts_with("abzz"));
        assert_eq!(odd.ip(), Some("x"));
        assert_eq!(
            format!("{ip_only:?}"),
            r#"DeviceInfo { label: "", ip: Some("::/48") }"#
        );
        // Every live session carries one: it stays two words.
        assert_eq!(std::mem::size_of::<DeviceInfo>(), 16);
    }
}
