//! Who the client is: the peer address, and `X-Forwarded-For` behind trusted proxies.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use http::{Extensions, HeaderMap, HeaderName};

use crate::config::Cidr;
use crate::config::cidr_mask as mask;

/// The `X-Forwarded-For` header.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// At most this many `X-Forwarded-For` hops are walked; a longer chain of trusted proxies is
/// not a real deployment, and the walk stays bounded whatever a client sends.
const MAX_HOPS: usize = 32;

/// The address of a connection's peer, for servers that do not use axum's `ConnectInfo`.
///
/// [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) needs the peer address of every request. Under
/// axum, serve the router with `into_make_service_with_connect_info::<SocketAddr>()` and
/// nothing else is needed. With bare hyper, insert a `PeerAddr` into each request's extensions
/// from the accepted connection's address:
///
/// ```
/// use std::convert::Infallible;
/// use std::net::SocketAddr;
/// use http::Request;
/// use tower::{ServiceExt, service_fn};
/// use tower_jwt_session::rate_limit::PeerAddr;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let app = service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(http::Response::new(String::new())) });
/// // In the accept loop: `let (stream, remote) = listener.accept().await?;`
/// let remote: SocketAddr = "203.0.113.7:50123".parse()?;
/// let per_connection = app.map_request(move |mut req: Request<String>| {
///     req.extensions_mut().insert(PeerAddr(remote));
///     req
/// });
/// # let _ = per_connection.oneshot(Request::new(String::new())).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// The client's IP address as [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) resolved it: the peer
/// address, or the right-most untrusted `X-Forwarded-For` entry when the peer is a trusted
/// proxy.
///
/// The layer puts it into the request extensions, so handlers behind it (a login handler
/// feeding an [`AttemptTracker`](crate::rate_limit::AttemptTracker)) see the same address the limiter
/// counted. Under the `axum` feature it is an extractor, whose rejection (500) names the
/// missing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The peer address from [`PeerAddr`] or, under the `axum` feature, `ConnectInfo<SocketAddr>`.
#[inline]
pub(crate) fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    None
}

#[inline]
fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client address: `peer` itself unless it is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy. Entries left of that one were written
/// by the client and are never read. When every entry is trusted, the left-most one; when an
/// entry does not parse, the nearest trusted hop (the proxy that forwarded the garbage).
pub(crate) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut nearest = peer;
    let mut hops = 0;
    // Several X-Forwarded-For lines form one list, in order (RFC 9110 §5.3).
    // Each entry is read from the raw bytes on its own: bytes that are not ASCII in an entry
    // left of the client (written by the client) must not spoil the entries the proxies wrote.
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for entry in value.as_bytes().rsplit(|&b| b == b',') {
            let entry = entry.trim_ascii();
            if entry.is_empty() {
                continue;
            }
            hops += 1;
            let Some(ip) = std::str::from_utf8(entry).ok().and_then(parse_hop) else {
                tracing::debug!(proxy = %nearest, "unparseable X-Forwarded-For entry; keying on the proxy");
                return nearest;
            };
            let ip = ip.to_canonical();
            if !is_trusted(ip, trusted) {
                return ip;
            }
            nearest = ip;
            if hops == MAX_HOPS {
                return nearest;
            }
        }
    }
    nearest
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`) or in
/// brackets (`[::1]`), as some proxies write them.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<IpAddr>().ok())
}

/// The backend key of a client, formatted on the stack: the IPv4 address, or the IPv6 address
/// cut to its prefix (`2001:db8:1:2::/64`), since one IPv6 subscriber usually holds a whole /64.
pub(crate) struct IpKey {
    buf: [u8; 48],
    len: usize,
}

impl IpKey {
    #[inline]
    pub(crate) fn new(ip: IpAddr, ipv6_prefix_len: u8) -> Self {
        let mut key = Self {
            buf: [0; 48],
            len: 0,
        };
        let ip = ip.to_canonical();
        // Cannot fail: the longest key, a full IPv6 address and "/128", is 44 bytes.
        let _ = match ip {
            IpAddr::V4(_) => write!(key, "{ip}"),
            IpAddr::V6(_) if ipv6_prefix_len >= 128 => write!(key, "{ip}"),
            IpAddr::V6(_) => write!(key, "{}/{ipv6_prefix_len}", mask(ip, ipv6_prefix_len)),
        };
        key
    }

    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        // Only `write_str` fills the buffer, always with whole `&str`s.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for IpKey {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::FromRequestParts;
    use axum::response::{IntoResponse, Response};

    use http::request::Parts;

    use super::ClientIp;
    use crate::error::{ErrorCode, json_error};

    /// The rejection of the [`ClientIp`] extractor: the route is not behind a
    /// [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer). A wiring mistake, so it answers 500.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[error(
        "no ClientIp in the request extensions: this route is not behind tower_jwt_session::layer::ClientRateLimitLayer; add `.layer(rate_limit_layer)` to the router or route"
    )]
    pub struct MissingRateLimitLayer;

    impl IntoResponse for MissingRateLimitLayer {
        fn into_response(self) -> Response {
            tracing::error!("{self}");
            json_error(ErrorCode::Internal, &self.to_string()).map(axum::body::Body::from)
        }
    }

    /// Extracts the client address resolved by [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer).
    impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
        type Rejection = MissingRateLimitLayer;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<ClientIp>()
                .copied()
                .ok_or(MissingRateLimitLayer)
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::MissingRateLimitLayer;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn trusted() -> Vec<Cidr> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let spoof = xff(&["1.2.3.4", "5.6.7.8, 10.0.0.1"]);
        assert_eq!(
            resolve(ip("203.0.113.9"), &spoof, &trusted()),
            ip("203.0.113.9")
        );
        assert_eq!(resolve(ip("203.0.113.9"), &spoof, &[]), ip("203.0.113.9"));
        assert_eq!(resolve(ip("10.0.0.1"), &spoof, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let t = trusted();
        // client spoofs 6.6.6.6; the edge proxy appends the real address; an inner proxy
        // appends the edge proxy.
        let h = xff(&["6.6.6.6, 198.51.100.4", "10.1.1.1"]);
        assert_eq!(resolve(ip("10.2.2.2"), &h, &t), ip("198.51.100.4"));
        // One line, with ports and brackets and spaces.
        let h = xff(&["6.6.6.6,198.51.100.4:5555 , [fd00::2]:80,[fd00::3]"]);
        assert_eq!(resolve(ip("10.2.2.2"), &h, &t), ip("198.51.100.4"));
        // A dual-stack socket reports the proxy as IPv4-mapped IPv6.
        let h = xff(&["198.51.100.4"]);
        assert_eq!(resolve(ip("::ffff:10.0.0.7"), &h, &t), ip("198.51.100.4"));
        // No header: the proxy itself.
        assert_eq!(
            resolve(ip("10.0.0.7"), &HeaderMap::new(), &t),
            ip("10.0.0.7")
        );
        // Every hop trusted: the left-most.
        let h = xff(&["10.9.9.9, 10.8.8.8"]);
        assert_eq!(resolve(ip("10.0.0.7"), &h, &t), ip("10.9.9.9"));
        // Garbage right of the client: the nearest trusted hop, never the claimed address.
        let h = xff(&["6.6.6.6, not-an-ip, 10.8.8.8"]);
        assert_eq!(resolve(ip("10.0.0.7"), &h, &t), ip("10.8.8.8"));
        // An endless chain of trusted hops is cut short.
        let long = vec!["10.0.0.1"; 1000].join(",");
        let h = xff(&[&format!("6.6.6.6,{long}")]);
        assert_eq!(resolve(ip("10.0.0.7"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn bytes_that_are_not_ascii_left_of_the_client_do_not_move_it_into_the_proxys_bucket() {
        let t = trusted();
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff\xfe caf\xc3\xa9, 198.51.100.4, 10.1.1.1").unwrap(),
        );
        assert_eq!(resolve(ip("10.2.2.2"), &h, &t), ip("198.51.100.4"));
        // On a line of its own, left of the proxies' lines: never read either.
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"\xff").unwrap());
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.4"));
        assert_eq!(resolve(ip("10.2.2.2"), &h, &t), ip("198.51.100.4"));
        // Right of the client, written by a trusted hop: the nearest trusted hop, as for any
        // entry that does not parse.
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.4, \xff, 10.8.8.8").unwrap(),
        );
        assert_eq!(resolve(ip("10.0.0.7"), &h, &t), ip("10.8.8.8"));
    }

    #[test]
    fn keys_are_canonical_and_ipv6_is_grouped_by_prefix() {
        assert_eq!(IpKey::new(ip("192.0.2.1"), 64).as_str(), "192.0.2.1");
        assert_eq!(IpKey::new(ip("::ffff:192.0.2.1"), 64).as_str(), "192.0.2.1");
        assert_eq!(
            IpKey::new(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 64).as_str(),
            "2001:db8:1:2::/64"
        );
        let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
        assert_eq!(IpKey::new(ip(full), 128).as_str(), full);
        assert_eq!(
            IpKey::new(ip(full), 127).as_str(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"
        );
    }
}
