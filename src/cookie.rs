//! The refresh-token cookie: building `Set-Cookie` and reading `Cookie`.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::config::SessionConfig;
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

impl SessionManager {
    /// The `Set-Cookie` value that hands `pair`'s refresh token to the browser, with the
    /// attributes of the configuration (`SESSION_COOKIE_*`, path, name) and a `Max-Age` that
    /// ends with the refresh token.
    pub fn refresh_cookie(&self, pair: &TokenPair) -> HeaderValue {
        let now_ms = self.codec().clock().now_ms();
        let max_age = pair.refresh_expires_at.saturating_sub(now_ms) / 1000;
        build(self.config(), &pair.refresh_token, max_age)
    }

    /// The `Set-Cookie` value that removes the refresh-token cookie (on logout).
    pub fn clear_refresh_cookie(&self) -> HeaderValue {
        build(self.config(), "", 0)
    }
}

fn build(config: &SessionConfig, value: &str, max_age: u64) -> HeaderValue {
    let mut cookie = format!(
        "{}={}; Path={}; Max-Age={}",
        config.cookie_name, value, config.cookie_path, max_age
    );
    if config.cookie_http_only {
        cookie.push_str("; HttpOnly");
    }
    if config.cookie_secure {
        cookie.push_str("; Secure");
    }
    cookie.push_str("; SameSite=");
    cookie.push_str(config.cookie_same_site.as_str());
    // Token characters, the configured name and path are all visible ASCII.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request's `Cookie` headers, if present and non-empty.
pub(crate) fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
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
    fn attributes_follow_the_configuration() {
        let config = SessionConfig::new("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            build(&config, "v", 60),
            "tjs_refresh=v; Path=/api/token; Max-Age=60; HttpOnly; Secure; SameSite=Strict"
        );
        let config = config
            .cookie_http_only(false)
            .cookie_secure(false)
            .cookie_same_site(crate::SameSite::Lax);
        assert_eq!(
            build(&config, "", 0),
            "tjs_refresh=; Path=/api/token; Max-Age=0; SameSite=Lax"
        );
    }
}
