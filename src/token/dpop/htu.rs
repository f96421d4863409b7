//! `htu` against the request: [`PublicOrigin`] and RFC 3986 normalization.
//!
//! RFC 9449 §4.3 compares `htu` with the request's URI, ignoring query and fragment, after
//! syntax-based (RFC 3986 §6.2.2: case of scheme and host, percent-encoding, dot segments) and
//! scheme-based normalization (§6.2.3: the default port elided, an empty path as `/`). Both
//! sides go through the same functions here and are then compared as strings.
//!
//! Hand-written because `http::Uri` splits but does not normalize (it keeps `Example.COM:443`
//! and `/a/../b` as they came) and is more lenient than RFC 3986 (it takes non-ASCII bytes in
//! a path and userinfo in an authority); the `url` crate normalizes for browsers (WHATWG),
//! which differs from RFC 3986 on percent-encoding and would bring IDNA tables along.

use std::fmt;

/// A public origin, `scheme://host[:port]`, normalized: the part of `htu` before the path.
///
/// Behind a proxy, the URL a client signs is the public one (`https://api.example.com`), not
/// the address the server listens on: the server is configured with its public origin, or
/// builds it from headers it trusts.
///
/// ```
/// use tower_jwt_session::token::dpop::PublicOrigin;
///
/// let origin = PublicOrigin::parse("HTTPS://API.Example.com:443")?;
/// assert_eq!(origin.as_str(), "https://api.example.com");
/// assert_eq!(PublicOrigin::from_parts("http", "127.0.0.1:3000")?.as_str(), "http://127.0.0.1:3000");
/// # Ok::<(), tower_jwt_session::token::dpop::InvalidOrigin>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicOrigin(Box<str>);

/// A public origin that is not `http(s)://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{value}\" is not an origin: expected http(s)://host[:port], without path, query or user"
)]
pub struct InvalidOrigin {
    value: String,
}

impl PublicOrigin {
    /// Parses `scheme://host[:port]` (a trailing `/` is allowed). Scheme and host are
    /// lowercased, a default port (80 for http, 443 for https) is dropped.
    ///
    /// # Errors
    /// [`InvalidOrigin`] for another scheme than http or https, a missing host, userinfo, a
    /// path, a query or a fragment.
    pub fn parse(origin: &str) -> Result<Self, InvalidOrigin> {
        let invalid = || InvalidOrigin {
            value: crate::escape::Escaped::with_max_len(origin, 200).to_string(),
        };
        let mut out = String::with_capacity(origin.len());
        let rest = normalize_origin(origin, &mut out).ok_or_else(invalid)?;
        if rest.is_empty() || rest == "/" {
            Ok(Self(out.into()))
        } else {
            Err(invalid())
        }
    }

    /// The origin of a scheme and an authority (`Host` header or `:authority`), as a server
    /// sees them: `from_parts("https", "api.example.com")`.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn from_parts(scheme: &str, authority: &str) -> Result<Self, InvalidOrigin> {
        Self::parse(&format!("{scheme}://{authority}"))
    }

    /// The normalized origin.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicOrigin").field(&&*self.0).finish()
    }
}

impl fmt::Display for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `htu` normalized: `scheme://host[:port]/path`, query and fragment dropped; `None` when it
/// is not an absolute http(s) URI.
pub(super) fn normalize_htu(htu: &str) -> Option<String> {
    let mut out = String::with_capacity(htu.len() + 1);
    let rest = normalize_origin(htu, &mut out)?;
    normalize_path(rest, &mut out)?;
    Some(out)
}

/// Whether `htu` (from the proof) names `origin` and `path` (the request's path; its query,
/// if any, is ignored).
pub(super) fn htu_matches(htu: &str, origin: &PublicOrigin, path: &str) -> bool {
    let Some(htu) = normalize_htu(htu) else {
        return false;
    };
    let mut expected = String::with_capacity(origin.0.len() + path.len() + 1);
    expected.push_str(&origin.0);
    if normalize_path(path, &mut expected).is_none() {
        return false;
    }
    htu == expected
}

/// Writes the normalized `scheme://authority` of `uri` into `out` and returns the rest (the
/// path, query and fragment).
// Size: the normalization of scheme, host and port (RFC 3986 §6.2.2 and §6.2.3), one rule after the other.
fn normalize_origin<'a>(uri: &'a str, out: &mut String) -> Option<&'a str> {
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    let (scheme, default_port) = if scheme.eq_ignore_ascii_case("https") {
        ("https", 443)
    } else if scheme.eq_ignore_ascii_case("http") {
        ("http", 80)
    } else {
        return None;
    };
    let after = uri[colon + 1..].strip_prefix("//")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // RFC 9110 §4.2.4: no userinfo in http(s) URIs.
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']')?;
        let literal = &v6[..close];
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        (&authority[..close + 2], &v6[close + 1..])
    } else {
        match authority.rfind(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        "" | ":" => None,
        p => {
            let digits = p.strip_prefix(':')?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 5 {
                return None;
            }
            Some(digits.parse::<u16>().ok()?)
        }
    };
    out.push_str(scheme);
    out.push_str("://");
    if host.starts_with('[') {
        out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        // reg-name or IPv4: unreserved / pct-encoded / sub-delims, lowercased.
        normalize_component(host, out, |b| is_unreserved(b) || is_sub_delim(b), true)?;
    }
    if let Some(port) = port.filter(|&p| p != default_port) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    Some(rest)
}

/// Writes the normalized path of `rest` (which may go on with a query or a fragment, both
/// dropped): percent-encoding normalized, dot segments removed, empty as `/`.
fn normalize_path(rest: &str, out: &mut String) -> Option<()> {
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let path = &rest[..end];
    if path.is_empty() {
        out.push('/');
        return Some(());
    }
    if !path.starts_with('/') {
        return None;
    }
    let mut normalized = String::with_capacity(path.len());
    normalize_component(path, &mut normalized, |b| is_pchar(b) || b == b'/', false)?;
    remove_dot_segments(&normalized, out);
    Some(())
}

/// Copies `part` into `out`: characters for which `allowed` holds as they are (lowercased if
/// `lower`), `%XX` with uppercase hex, or decoded when it encodes an unreserved character.
/// `None` on any other character or a broken escape.
fn normalize_component(
    part: &str,
    out: &mut String,
    allowed: impl Fn(u8) -> bool,
    lower: bool,
) -> Option<()> {
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            let decoded = hi << 4 | lo;
            if is_unreserved(decoded) {
                let c = if lower {
                    decoded.to_ascii_lowercase()
                } else {
                    decoded
                };
                out.push(c as char);
            } else {
                out.push('%');
                out.push(HEX_UPPER[usize::from(hi)] as char);
                out.push(HEX_UPPER[usize::from(lo)] as char);
            }
            i += 3;
        } else if allowed(b) {
            out.push(if lower { b.to_ascii_lowercase() } else { b } as char);
            i += 1;
        } else {
            return None;
        }
    }
    Some(())
}

/// RFC 3986 §5.2.4, on a path that starts with `/`.
fn remove_dot_segments(path: &str, out: &mut String) {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    // Whether the path ends with a directory (a trailing `/`, `.` or `..`).
    let mut trailing_slash = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if segments.is_empty() || trailing_slash {
        out.push('/');
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> PublicOrigin {
        PublicOrigin::parse(s).unwrap()
    }

    #[test]
    fn origins_are_normalized() {
        for (input, want) in [
            ("https://api.example.com", "https://api.example.com"),
            ("HTTPS://API.Example.COM:443/", "https://api.example.com"),
            ("http://localhost:80", "http://localhost"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://example.com:80", "https://example.com:80"),
            ("https://example.com:0443", "https://example.com"),
            ("https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443"),
            ("https://%65xample.com", "https://example.com"),
            ("https://example.com:", "https://example.com"),
        ] {
            assert_eq!(origin(input).as_str(), want, "{input}");
        }
        for bad in [
            "ftp://example.com",
            "https:/example.com",
            "https://",
            "https://user@example.com",
            "https://example.com/api",
            "https://example.com?x",
            "https://example.com#x",
            "https://exa mple.com",
            "https://example.com:99999",
            "https://example.com:8a",
            "https://[zz::1]",
            "example.com",
            "",
        ] {
            assert!(
                PublicOrigin::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn htu_normalization_follows_rfc_3986_section_6() {
        let o = origin("https://api.example.com");
        for htu in [
            "https://api.example.com/resource",
            "HTTPS://API.EXAMPLE.COM/resource",
            "https://api.example.com:443/resource",
            "https://api.example.com/resource?query=1",
            "https://api.example.com/resource#fragment",
            "https://api.example.com/%72esource",
            "https://api.example.com/a/../resource",
            "https://api.example.com/./resource",
        ] {
            assert!(htu_matches(htu, &o, "/resource"), "{htu} should match");
        }
        // Percent-encoding of reserved characters is significant; hex case is not.
        assert!(htu_matches("https://api.example.com/a%2fb", &o, "/a%2Fb"));
        assert!(!htu_matches("https://api.example.com/a%2Fb", &o, "/a/b"));
        // The request's own query is ignored too.
        assert!(htu_matches("https://api.example.com/r", &o, "/r?x=1"));
        // An empty path is `/`.
        assert!(htu_matches("https://api.example.com", &o, "/"));
        assert!(htu_matches("https://api.example.com/", &o, ""));
        for htu in [
            "http://api.example.com/resource",
            "https://api.example.com:8443/resource",
            "https://other.example.com/resource",
            "https://api.example.com/Resource",
            "https://api.example.com/resource/",
            "https://user@api.example.com/resource",
            "https://api.example.com/résource",
            "https://api.example.com/resource%",
            "https://api.example.com/resource%zz",
            "/resource",
            "api.example.com/resource",
            "",
        ] {
            assert!(!htu_matches(htu, &o, "/resource"), "{htu} should not match");
        }
    }

    #[test]
    fn dot_segments_are_removed_as_rfc_3986_5_2_4_says() {
        for (path, want) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
            ("/..", "/"),
            ("/../..", "/"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a//b", "/a//b"),
            ("/", "/"),
        ] {
            let mut out = String::new();
            remove_dot_segments(path, &mut out);
            assert_eq!(out, want, "{path}");
        }
    }
}
