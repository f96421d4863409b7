//! [`CookieSettings`]: the refresh-token cookie, and the origins trusted to send it.

use super::ConfigError;
use super::env::Env;

/// The `SameSite` attribute of the refresh-token cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only on same-site requests (the default).
    #[default]
    Strict,
    /// Also sent on top-level navigations from other sites.
    Lax,
    /// Sent on cross-site requests too; requires `Secure`.
    None,
}

/// The refresh-token cookie's name and attributes, and the origins trusted to refresh through
/// the cookie alone (the CSRF rule of [the protocol](crate::routes#the-refresh-cookie-and-csrf)).
///
/// ```
/// use tower_jwt_session::config::{CookieSettings, SameSite};
///
/// let cookies = CookieSettings::default().with_same_site(SameSite::Lax);
/// assert!(cookies.secure() && cookies.http_only());
/// assert_eq!(cookies.same_site(), SameSite::Lax);
/// assert_eq!(cookies.name(), "tjs_refresh");
/// assert_eq!(cookies.path(), "/api/token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct CookieSettings {
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    name: String,
    path: String,
    allowed_origins: Vec<String>,
}

impl Default for CookieSettings {
    /// `tjs_refresh`, `Path=/api/token`, `Secure`, `HttpOnly`, `SameSite=Strict`, no trusted
    /// origins.
    fn default() -> Self {
        Self {
            secure: true,
            http_only: true,
            same_site: SameSite::Strict,
            name: "tjs_refresh".to_owned(),
            path: "/api/token".to_owned(),
            allowed_origins: Vec::new(),
        }
    }
}

impl CookieSettings {
    /// Reads `SESSION_COOKIE_SECURE`, `SESSION_COOKIE_HTTP_ONLY`, `SESSION_COOKIE_SAME_SITE`
    /// and `ALLOWED_ORIGINS` from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is malformed, or the settings that conflict.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(super::process_env)
    }

    /// As [`from_env`](Self::from_env), through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let cookies = Self::read(&Env::new(&lookup))?;
        cookies.validate()?;
        Ok(cookies)
    }

    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut cookies = Self::default();
        if let Some(secure) = env.flag("SESSION_COOKIE_SECURE")? {
            cookies.secure = secure;
        }
        if let Some(http_only) = env.flag("SESSION_COOKIE_HTTP_ONLY")? {
            cookies.http_only = http_only;
        }
        let choices = [
            ("strict", SameSite::Strict),
            ("lax", SameSite::Lax),
            ("none", SameSite::None),
        ];
        if let Some(same_site) = env.choice(
            "SESSION_COOKIE_SAME_SITE",
            &choices,
            "`strict`, `lax` or `none`",
        )? {
            cookies.same_site = same_site;
        }
        if let Some(origins) = env.list("ALLOWED_ORIGINS") {
            let origins: Vec<String> = origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect();
            if !origins.iter().all(|o| is_origin(o)) {
                return Err(ConfigError::Invalid {
                    name: "ALLOWED_ORIGINS",
                    value: env.get("ALLOWED_ORIGINS").unwrap_or_default(),
                    expected: "comma-separated origins such as https://app.example.com (scheme, host and optional port, no path)",
                });
            }
            cookies.allowed_origins = origins;
        }
        Ok(cookies)
    }

    /// `Secure` attribute (`SESSION_COOKIE_SECURE`). The default is `true`; turn it off only
    /// for plain-HTTP development.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// `HttpOnly` attribute (`SESSION_COOKIE_HTTP_ONLY`). The default is `true`; turning it off
    /// exposes the refresh token to scripts.
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// `SameSite` attribute (`SESSION_COOKIE_SAME_SITE`). The default is [`SameSite::Strict`].
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Name of the cookie. The default is `tjs_refresh`.
    ///
    /// `__Host-tjs_refresh` (with path `/` and `Secure`) keeps sibling subdomains from
    /// planting a refresh cookie of their own; it is not the default because it sends the
    /// cookie to every route. A `__Host-` or `__Secure-` name that browsers would drop is
    /// refused at validation.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// `Path` attribute, so browsers send the cookie to the token routes only. The default is
    /// `/api/token`.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Origins (`scheme://host[:port]`) trusted to refresh through the cookie alone and to
    /// log in from a browser (`ALLOWED_ORIGINS`). Requests with an `X-Requested-With` header
    /// are accepted without one. The default is none.
    pub fn with_allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the cookie is `Secure`.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Whether the cookie is `HttpOnly`.
    pub fn http_only(&self) -> bool {
        self.http_only
    }

    /// The cookie's `SameSite` attribute.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's `Path`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The trusted origins.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        // RFC 6265: a cookie name is a token (visible ASCII, no separators); a path any
        // visible ASCII but `;`. Checked here, so that every `Set-Cookie` the crate builds is a
        // valid header (it used to go out empty otherwise).
        let separator = |c: char| "()<>@,;:\\\"/[]?={} \t".contains(c);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_graphic() && !separator(c))
        {
            return Err(ConfigError::Invalid {
                name: "CookieSettings::with_name",
                value: self.name.clone(),
                expected: "a cookie name: visible ASCII letters, digits and !#$%&'*+-.^_`|~, such as tjs_refresh",
            });
        }
        if !self.path.starts_with('/')
            || !self.path.chars().all(|c| c.is_ascii_graphic() && c != ';')
        {
            return Err(ConfigError::Invalid {
                name: "CookieSettings::with_path",
                value: self.path.clone(),
                expected: "a path starting with / of visible ASCII without ;, such as /api/token",
            });
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(conflict(
                "SESSION_COOKIE_SAME_SITE / SESSION_COOKIE_SECURE",
                "SESSION_COOKIE_SAME_SITE is none but SESSION_COOKIE_SECURE is false: browsers drop SameSite=None cookies that are not Secure".to_owned(),
                "set SESSION_COOKIE_SECURE=true (CookieSettings::with_secure(true)), or another SESSION_COOKIE_SAME_SITE",
            ));
        }
        let prefixed = |prefix: &str| {
            self.name
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        };
        if prefixed("__Host-") && (!self.secure || self.path != "/") {
            return Err(conflict(
                "CookieSettings::with_name / SESSION_COOKIE_SECURE / CookieSettings::with_path",
                format!(
                    "the cookie is named {:?} with Secure={} and Path={}: browsers drop a __Host- cookie unless it is Secure with Path=/",
                    self.name, self.secure, self.path
                ),
                "set SESSION_COOKIE_SECURE=true and CookieSettings::with_path(\"/\"), or drop the prefix",
            ));
        }
        if prefixed("__Secure-") && !self.secure {
            return Err(conflict(
                "CookieSettings::with_name / SESSION_COOKIE_SECURE",
                format!(
                    "the cookie is named {:?} but SESSION_COOKIE_SECURE is false: browsers drop a __Secure- cookie that is not Secure",
                    self.name
                ),
                "set SESSION_COOKIE_SECURE=true (CookieSettings::with_secure(true)), or drop the prefix",
            ));
        }
        Ok(())
    }
}

fn conflict(name: &'static str, reason: String, fix: &str) -> ConfigError {
    ConfigError::Conflict {
        name,
        reason,
        fix: fix.to_owned(),
    }
}

/// `scheme://host[:port]`, http or https, no path.
fn is_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    rest.is_some_and(|host| !host.contains('/'))
}
