//! [`Cidr`]: an IP network, for the list of trusted proxies.
//!
//! The network arithmetic (prefix lengths, masking, containment, display) is the `ipnet`
//! crate's; `Cidr` wraps it so that our public API does not follow ipnet's versions. Parsing
//! the text stays here, in a few lines on top of `std`'s address parser, because ipnet's
//! parser refuses a plain address, accepts host bits past the prefix (`10.0.0.1/8`, almost
//! always a typo), and reports every mistake as "invalid IP address syntax", while a
//! misconfigured `TRUSTED_PROXIES` should say what is wrong and how to write it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address (`/32`, `/128`).
///
/// Used for [`RateLimitConfig::trusted_proxies`](crate::rate_limit::RateLimitConfig::trusted_proxies).
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers)
/// are matched as the IPv4 addresses they are.
///
/// ```
/// use std::net::IpAddr;
/// use tower_jwt_session::rate_limit::Cidr;
///
/// let private: Cidr = "10.0.0.0/8".parse()?;
/// assert!(private.contains("10.1.2.3".parse::<IpAddr>()?));
/// assert!(private.contains("::ffff:10.1.2.3".parse::<IpAddr>()?));
/// assert!(!private.contains("11.0.0.1".parse::<IpAddr>()?));
///
/// let one: Cidr = "2001:db8::1".parse()?;
/// assert_eq!(one.prefix_len(), 128);
///
/// // Host bits set is almost always a typo, so it is refused.
/// assert!("10.0.0.1/8".parse::<Cidr>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// The text is not an IP address or network; the message says why and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an IP network: {reason}")]
pub struct ParseCidrError {
    input: String,
    reason: String,
}

const EXPECTED: &str = "expected an IP address or a CIDR network such as 10.0.0.0/8 or fd00::/8";

/// The longest prefix of `addr`'s family: 32 or 128.
fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

impl Cidr {
    /// The network `addr/prefix_len`.
    ///
    /// # Errors
    /// When `prefix_len` exceeds the address length (32 or 128), or `addr` has bits set past
    /// the prefix (`10.0.0.1/8`: write `10.0.0.0/8`, or `10.0.0.1/32` for one address).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, ParseCidrError> {
        let err = |reason: String| ParseCidrError {
            input: format!("{addr}/{prefix_len}"),
            reason,
        };
        let net = IpNet::new(addr, prefix_len).map_err(|_| {
            let max = max_len(addr);
            err(format!("the prefix length is over {max}; {EXPECTED}"))
        })?;
        if net.trunc() != net {
            let fixed = net.trunc();
            return Err(err(format!(
                "bits are set past the prefix; did you mean {fixed}?"
            )));
        }
        Ok(Self(net).canonical())
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses count as IPv4.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }

    /// An IPv4-mapped IPv6 network with a prefix of at least 96 bits is the IPv4 network.
    fn canonical(self) -> Self {
        let IpNet::V6(v6) = self.0 else {
            return self;
        };
        match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => {
                let net = Ipv4Net::new(v4, v6.prefix_len() - 96).expect("at most 32 bits");
                Self(IpNet::V4(net))
            }
            _ => self,
        }
    }
}

/// Why a list of trusted proxies lets clients choose their own address, if it does: the
/// networks together cover every IPv4 or every IPv6 address, or one network is wider than any
/// proxy fleet (IPv4 wider than /8, IPv6 wider than /7, the size of all unique local addresses).
pub(crate) fn too_wide(proxies: &[Cidr]) -> Option<&'static str> {
    if proxies.iter().any(|c| match c.0 {
        IpNet::V4(n) => n.prefix_len() < 8,
        IpNet::V6(n) => n.prefix_len() < 7,
    }) {
        return Some(
            "proxy networks no wider than /8 (IPv4) or /7 (IPv6): a wider one lets a large part of the internet name its own address in X-Forwarded-For and dodge the rate limit and the login lock-out; list your proxies' addresses",
        );
    }
    let v4: Vec<(u128, u128)> = proxies
        .iter()
        .filter_map(|c| match c.0 {
            IpNet::V4(n) => Some((
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            )),
            IpNet::V6(_) => None,
        })
        .collect();
    let v6: Vec<(u128, u128)> = proxies
        .iter()
        .filter_map(|c| match c.0 {
            IpNet::V6(n) => Some((u128::from(n.network()), u128::from(n.broadcast()))),
            IpNet::V4(_) => None,
        })
        .collect();
    (covers(v4, u128::from(u32::MAX)) || covers(v6, u128::MAX)).then_some(
        "the proxies between the internet and this server, not every address: these networks cover every IPv4 or every IPv6 address, so any client could name its own address in X-Forwarded-For and dodge the rate limit and the login lock-out",
    )
}

/// Whether the inclusive ranges cover `0..=max` together.
fn covers(mut ranges: Vec<(u128, u128)>, max: u128) -> bool {
    ranges.sort_unstable();
    let mut next = 0u128; // the first address not yet covered
    for (start, end) in ranges {
        if start > next {
            return false;
        }
        if end >= max {
            return true;
        }
        next = next.max(end + 1);
    }
    false
}

/// Clears the bits of `ip` past `prefix_len` (clamped to the address length).
#[inline]
pub(crate) fn mask(ip: IpAddr, prefix_len: u8) -> IpAddr {
    IpNet::new(ip, prefix_len.min(max_len(ip)))
        .expect("a prefix length within the address length")
        .network()
}

impl FromStr for Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let err = |reason: String| ParseCidrError {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| err(format!("the address does not parse; {EXPECTED}")))?;
        let prefix_len = match prefix {
            None => max_len(addr),
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| err(format!("the prefix length is out of range; {EXPECTED}")))?,
            Some(_) => {
                return Err(err(format!(
                    "the prefix length is not a number; {EXPECTED}"
                )));
            }
        };
        Cidr::new(addr, prefix_len).map_err(|e| err(e.reason))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<IpAddr> for Cidr {
    /// The network holding just this address.
    fn from(addr: IpAddr) -> Self {
        Self(IpNet::from(addr)).canonical()
    }
}

impl From<Ipv4Addr> for Cidr {
    /// The `/32` network holding just this address.
    fn from(addr: Ipv4Addr) -> Self {
        IpAddr::V4(addr).into()
    }
}

impl From<Ipv6Addr> for Cidr {
    /// The `/128` network holding just this address.
    fn from(addr: Ipv6Addr) -> Self {
        IpAddr::V6(addr).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_plain_addresses() {
        let n: Cidr = "10.0.0.0/8".parse().unwrap();
        assert_eq!((n.addr(), n.prefix_len()), (ip("10.0.0.0"), 8));
        assert_eq!(n.to_string(), "10.0.0.0/8");
        let one: Cidr = " 192.168.1.7 ".parse().unwrap();
        assert_eq!(one.prefix_len(), 32);
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert_eq!(v6.prefix_len(), 8);
        let v6one: Cidr = "2001:db8::1".parse().unwrap();
        assert_eq!(v6one.prefix_len(), 128);
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
    }

    #[test]
    fn refuses_bad_input_and_says_why() {
        for (bad, says) in [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("10.0.0.0/33", "over 32"),
            ("fd00::/129", "over 128"),
            ("10.0.0.0/", "not a number"),
            ("10.0.0.0/+8", "not a number"),
            ("10.0.0.0/0008", "not a number"),
            ("10.0.0/8", "does not parse"),
            ("localhost", "does not parse"),
            ("", "does not parse"),
        ] {
            let err = bad.parse::<Cidr>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn contains_matches_prefixes_and_mapped_addresses() {
        let n: Cidr = "172.16.0.0/12".parse().unwrap();
        assert!(n.contains(ip("172.16.0.1")));
        assert!(n.contains(ip("172.31.255.255")));
        assert!(!n.contains(ip("172.32.0.0")));
        assert!(n.contains(ip("::ffff:172.20.1.1")));
        let v6: Cidr = "2001:db8:1::/48".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:2::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let one = Cidr::from(ip("::ffff:127.0.0.1"));
        assert_eq!(one, "127.0.0.1".parse().unwrap());
        assert!(one.contains(ip("127.0.0.1")));
    }

    #[test]
    fn mask_clamps() {
        assert_eq!(mask(ip("10.1.2.3"), 0), ip("0.0.0.0"));
        assert_eq!(mask(ip("10.1.2.3"), 200), ip("10.1.2.3"));
        assert_eq!(mask(ip("2001:db8:1:2:3:4:5:6"), 64), ip("2001:db8:1:2::"));
    }
}
