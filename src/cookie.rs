//! The refresh-token cookie: building `Set-Cookie` and reading `Cookie` (with the `cookie`
//! crate).
//!
//! # Cookie prefixes
//!
//! The default name is plain `tjs_refresh`, with `Path=/api/token`, not `__Host-tjs_refresh`.
//! A `__Host-` cookie must be `Secure` with `Path=/` and no `Domain`, so a sibling subdomain
//! (or a plain-HTTP page on the same host) cannot plant ("toss") a refresh cookie of its own that
//! the browser would send instead of ours. We leave it off by default because:
//!
//! - `Path=/` would send the refresh token with every request to the app, where today it goes
//!   to the token routes only;
//! - both prefixes need `Secure`, and `SESSION_COOKIE_SECURE=false` (local plain-HTTP
//!   development) must keep working with the same name, or dev and production differ;
//! - a tossed cookie is what an attacker already holding a sibling subdomain could do; the
//!   refresh cookie is `HttpOnly`, `SameSite=Strict`, and is only read with CSRF proof.
//!
//! Where sibling subdomains are not trusted (shared hosting, user content on `*.example.com`),
//! opt in: [`CookieSettings`]`::with_name("__Host-tjs_refresh")` with `with_path("/")` (and
//! `Secure`, the default). [`SessionConfig::validate`](crate::SessionConfig::validate) refuses a `__Host-` name that is not `Secure` with
//! `Path=/`, and a `__Secure-` name that is not `Secure`, because browsers drop such cookies
//! silently.

use ::cookie::Cookie;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::config::{CookieSettings, SameSite};
use crate::manager::{SessionManager, TokenPair};

/// Where a client wants the refresh token, from the JSON field `refreshTokenDelivery` of the
/// login and token routes: `"body"` (the default: in the body, and in the cookie too) or
/// `"cookie"` (in the cookie only, so no script sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Delivery {
    #[default]
    Body,
    Cookie,
}

/// The `Set-Cookie` value that hands `pair`'s refresh token to the browser, with the
/// attributes of `manager`'s configuration (`SESSION_COOKIE_*`, path, name) and a `Max-Age`
/// that ends with the refresh token.
///
/// ```
/// use tower_jwt_session::manager::NewSession;
/// use tower_jwt_session::{SessionConfig, SessionManager, routes};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let pair = manager.create_session(NewSession::new("alice").roles(&["user"])).await?;
/// let set_cookie = routes::refresh_cookie(&manager, &pair);
/// assert!(set_cookie.to_str()?.starts_with("tjs_refresh="));
/// # Ok(())
/// # }
/// ```
pub fn refresh_cookie(manager: &SessionManager, pair: &TokenPair) -> HeaderValue {
    let now_ms = manager.codec().clock().now_ms();
    let left = pair
        .refresh_expires_at
        .duration_since(crate::clock::system_time(now_ms))
        .unwrap_or_default();
    let max_age = left.as_secs();
    build(manager.config().cookies(), &pair.refresh_token, max_age)
}

/// The `Set-Cookie` value that removes the refresh-token cookie (on logout).
pub fn clear_refresh_cookie(manager: &SessionManager) -> HeaderValue {
    build(manager.config().cookies(), "", 0)
}

fn build(cookies: &CookieSettings, value: &str, max_age: u64) -> HeaderValue {
    let same_site = match cookies.same_site() {
        SameSite::Lax => ::cookie::SameSite::Lax,
        SameSite::None => ::cookie::SameSite::None,
        _ => ::cookie::SameSite::Strict,
    };
    let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
    let cookie = Cookie::build((cookies.name(), value))
        .path(cookies.path())
        .max_age(::cookie::time::Duration::seconds(max_age))
        .http_only(cookies.http_only())
        .secure(cookies.secure())
        .same_site(same_site);
    // Token characters are visible ASCII, and the configuration refuses a name or path that
    // is not (`CookieSettings::validate`), so this header value always builds.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| {
        tracing::error!("the refresh cookie's Set-Cookie did not build: a cookie name or path the configuration should have refused");
        HeaderValue::from_static("tjs_refresh=; Max-Age=0")
    })
}

/// The value of cookie `name` in the request's `Cookie` headers, if present and non-empty;
/// surrounding double quotes are taken off.
pub(crate) fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; tjs_refresh=tok.en; b=2"),
        );
        assert_eq!(read(&h, "tjs_refresh"), Some("tok.en"));
        assert_eq!(read(&h, "missing"), None);
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("x=1"));
        h.append(COOKIE, HeaderValue::from_static("tjs_refresh=\"v\""));
        assert_eq!(read(&h, "tjs_refresh"), Some("v"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("tjs_refresh="));
        assert_eq!(read(&h, "tjs_refresh"), None);
    }

    #[test]
    fn prefixed_names_browsers_would_drop_are_refused() {
        let config = CookieSettings::default();
        let host = config.clone().with_name("__Host-tjs_refresh");
        assert!(host.validate().is_err(), "Path=/api/token");
        let host = host.with_path("/");
        assert!(host.validate().is_ok());
        assert_eq!(
            build(&host, "v", 60),
            "__Host-tjs_refresh=v; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=60"
        );
        assert!(host.clone().with_secure(false).validate().is_err());
        let lower = config.clone().with_name("__host-x").with_path("/");
        assert!(
            lower.with_secure(false).validate().is_err(),
            "case-insensitive"
        );
        let secure = config.clone().with_name("__Secure-tjs_refresh");
        assert!(secure.validate().is_ok());
        assert!(secure.with_secure(false).validate().is_err());
        // No prefix: plain HTTP for local development keeps working.
        assert!(config.with_secure(false).validate().is_ok());
    }

    #[test]
    fn attributes_follow_the_configuration() {
        let config = CookieSettings::default();
        assert_eq!(
            build(&config, "v", 60),
            "tjs_refresh=v; HttpOnly; SameSite=Strict; Secure; Path=/api/token; Max-Age=60"
        );
        let config = config
            .with_http_only(false)
            .with_secure(false)
            .with_same_site(crate::config::SameSite::Lax);
        assert_eq!(
            build(&config, "", 0),
            "tjs_refresh=; SameSite=Lax; Path=/api/token; Max-Age=0"
        );
    }

    /// A cookie name or path no `Set-Cookie` can carry is refused at startup: the header
    /// used to go out empty instead.
    #[test]
    fn a_name_or_path_no_header_can_carry_is_refused_at_startup() {
        let config = CookieSettings::default();
        for bad in ["", "tjs refresh", "tjs;refresh", "tjs=refresh", "tjs\u{e9}"] {
            let err = config.clone().with_name(bad).validate().unwrap_err();
            assert!(
                err.to_string().starts_with("CookieSettings::with_name="),
                "{bad:?}: {err}"
            );
            let app = crate::SessionConfig::new("0123456789abcdef0123456789abcdef").unwrap();
            let cookies = config.clone().with_name(bad);
            assert!(crate::SessionManager::new(app.with_cookies(cookies)).is_err());
        }
        for bad in ["api/token", "/api;x", "/api\n", "/\u{e9}"] {
            let err = config.clone().with_path(bad).validate().unwrap_err();
            assert!(
                err.to_string().starts_with("CookieSettings::with_path="),
                "{bad:?}: {err}"
            );
        }
        assert!(
            config
                .clone()
                .with_name("__Host-tjs")
                .with_path("/")
                .validate()
                .is_ok()
        );
    }
}
