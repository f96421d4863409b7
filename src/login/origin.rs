//! The Origin rule of the login route (login CSRF): see the [module docs](super).
//!
//! Origins are parsed with `http::Uri` and hosts with `http::uri::Authority`; what is
//! hand-written here is only the comparison.

use http::header::{HOST, ORIGIN};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderName, Uri};

/// `Sec-Fetch-Site` (Fetch Metadata): `same-origin`, `same-site`, `cross-site` or `none`.
pub(crate) const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why a request was refused; the text goes into the 403 body.
pub(crate) type Refusal = &'static str;

/// Applies the rule: `Ok` when the request may log in.
pub(crate) fn check(headers: &HeaderMap, uri: &Uri, allowed: &[String]) -> Result<(), Refusal> {
    let mut origins = headers.get_all(ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => None,
        (Some(value), None) => Some(
            value
                .to_str()
                .map_err(|_| "the Origin header is not a valid origin")?,
        ),
        (Some(_), Some(_)) => return Err("more than one Origin header"),
    };
    let is_allowed = origin.is_some_and(|o| is_allowed(o, allowed));
    let site = headers.get(SEC_FETCH_SITE).map(|v| v.as_bytes());
    if matches!(site, Some(b"cross-site" | b"same-site")) && !is_allowed {
        return Err(
            "a login from another site is accepted only from an allowed origin (Sec-Fetch-Site)",
        );
    }
    match origin {
        Some(origin) if !is_allowed && !same_origin(origin, headers, uri) => {
            Err("the Origin is neither this server nor one of the allowed origins")
        }
        _ => Ok(()),
    }
}

fn is_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to: its
/// `Host` header, or the authority of an absolute request target (HTTP/2). The scheme is not
/// compared (a server behind a TLS-terminating proxy sees plain HTTP), only host and port, with
/// the origin's scheme giving the default port.
fn same_origin(origin: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    let Ok(origin) = origin.parse::<Uri>() else {
        return false; // includes the opaque origin `null`
    };
    let (Some(scheme), Some(from)) = (origin.scheme(), origin.authority()) else {
        return false;
    };
    if origin.path() != "/" || origin.query().is_some() || from.as_str().contains('@') {
        return false;
    }
    let default_port = if *scheme == Scheme::HTTPS {
        443
    } else if *scheme == Scheme::HTTP {
        80
    } else {
        return false;
    };
    let target = match headers.get(HOST) {
        Some(host) => match host.to_str().ok().and_then(|h| h.parse::<Authority>().ok()) {
            Some(authority) => authority,
            None => return false,
        },
        None => match uri.authority() {
            Some(authority) => authority.clone(),
            None => return false,
        },
    };
    from.host().eq_ignore_ascii_case(target.host())
        && from.port_u16().unwrap_or(default_port) == target.port_u16().unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    fn verdict(pairs: &[(&'static str, &'static str)]) -> Result<(), Refusal> {
        let allowed = vec!["https://app.example.com".to_owned()];
        check(
            &headers(pairs),
            &Uri::from_static("/api/auth/login"),
            &allowed,
        )
    }

    #[test]
    fn no_origin_and_no_fetch_metadata_pass() {
        assert_eq!(verdict(&[]), Ok(()));
        assert_eq!(verdict(&[("host", "api.example.com")]), Ok(()));
        assert_eq!(verdict(&[("sec-fetch-site", "none")]), Ok(()));
        assert_eq!(verdict(&[("sec-fetch-site", "same-origin")]), Ok(()));
    }

    #[test]
    fn same_origin_passes_with_default_and_explicit_ports() {
        for (host, origin) in [
            ("api.example.com", "https://api.example.com"),
            ("API.example.com", "https://api.EXAMPLE.com"),
            ("api.example.com:443", "https://api.example.com"),
            ("localhost:3000", "http://localhost:3000"),
            ("127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("[::1]:3000", "http://[::1]:3000"),
            ("example.com", "http://example.com:80"),
        ] {
            let h = headers(&[
                ("host", host),
                ("origin", origin),
                ("sec-fetch-site", "same-origin"),
            ]);
            assert_eq!(check(&h, &Uri::from_static("/"), &[]), Ok(()), "{origin}");
        }
        // HTTP/2: no Host, the authority is in the request target.
        let h = headers(&[("origin", "https://api.example.com")]);
        let uri = Uri::from_static("https://api.example.com/api/auth/login");
        assert_eq!(check(&h, &uri, &[]), Ok(()));
    }

    #[test]
    fn a_foreign_origin_is_refused() {
        for (host, origin) in [
            ("api.example.com", "https://evil.example"),
            ("api.example.com", "https://api.example.com.evil.example"),
            ("localhost:3000", "http://localhost:3001"),
            ("localhost:3000", "http://localhost"),
            ("api.example.com", "null"),
            ("api.example.com", "https://api.example.com/path"),
            ("api.example.com", "https://user@api.example.com"),
            ("api.example.com", "ftp://api.example.com"),
            ("not a host", "https://api.example.com"),
        ] {
            let h = headers(&[("host", host), ("origin", origin)]);
            assert!(check(&h, &Uri::from_static("/"), &[]).is_err(), "{origin}");
        }
        // An Origin with no Host to compare it with is not same-origin.
        assert!(verdict(&[("origin", "https://api.example.com")]).is_err());
        assert!(
            verdict(&[
                ("origin", "https://app.example.com"),
                ("origin", "https://app.example.com")
            ])
            .is_err(),
            "two Origin headers"
        );
    }

    #[test]
    fn an_allowed_origin_passes_even_cross_site() {
        for site in ["cross-site", "same-site", "same-origin"] {
            let pairs = [
                ("host", "api.example.com"),
                ("origin", "https://APP.example.com"),
                ("sec-fetch-site", site),
            ];
            assert_eq!(verdict(&pairs), Ok(()), "{site}");
        }
    }

    #[test]
    fn cross_site_fetch_metadata_is_refused_unless_the_origin_is_allowed() {
        for site in ["cross-site", "same-site"] {
            // Without an Origin (some browsers leave it out), or with a same-origin-looking
            // one: Sec-Fetch-Site is the browser's own word and wins.
            assert!(verdict(&[("sec-fetch-site", site)]).is_err(), "{site}");
            let pairs = [
                ("host", "api.example.com"),
                ("origin", "https://api.example.com"),
                ("sec-fetch-site", site),
            ];
            assert!(verdict(&pairs).is_err(), "{site}");
        }
    }
}
