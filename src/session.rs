//! The verified session a request carries, and session identifiers.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

mod auth;
mod claims;
#[cfg(feature = "axum")]
mod extract;
mod memo;

pub(crate) use auth::is_thumbprint;
pub use auth::{AuthContext, MAX_AMR, MAX_AUTH_VALUE_LEN};
pub(crate) use claims::RawMembers;
pub(crate) use claims::is_reserved;
pub use claims::{ClaimsError, CustomClaims, RESERVED_CLAIMS};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::{Claims, ClaimsRejection, MissingSessionLayer};
pub(crate) use memo::StatusMemo;

/// A session identifier: 128 random bits, written as 22 base64url characters (the `sid` claim).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl std::hash::Hash for SessionId {
    /// One word: the id is random, so folding its halves loses nothing a hash table needs.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (lo, hi) = self.0.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(hi.try_into().expect("8 bytes"));
        state.write_u64(lo ^ hi.rotate_left(32));
    }
}

impl SessionId {
    /// A fresh random id from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the operating system has no random source, which no supported platform lacks.
    pub fn random() -> Self {
        Self(random_bytes())
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Builds an id from its raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses the 22-character base64url form without allocating.
    pub(crate) fn parse(s: &[u8]) -> Option<Self> {
        if s.len() != 22 {
            return None;
        }
        let mut out = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut out) {
            Ok(16) => Some(Self(out)),
            _ => None,
        }
    }

    /// Writes the 22-character form into `buf` and returns it as a `&str`.
    pub(crate) fn encode_into<'b>(&self, buf: &'b mut [u8; 22]) -> &'b str {
        let n = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut buf[..])
            .expect("22 bytes hold 16 in base64");
        std::str::from_utf8(&buf[..n]).expect("base64 is ASCII")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 22];
        f.write_str(self.encode_into(&mut buf))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// The text was not a session id (22 base64url characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id: expected 22 base64url characters")]
pub struct ParseSessionIdError;

impl FromStr for SessionId {
    type Err = ParseSessionIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes()).ok_or(ParseSessionIdError)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 22];
        s.serialize_str(self.encode_into(&mut buf))
    }
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source failed");
    out
}

/// The verified session of a request, put into the request extensions by
/// [`SessionLayer`](crate::SessionLayer).
///
/// Cheap to clone (one reference count). Under the `axum` feature it is also an extractor.
///
/// ```
/// use tower_jwt_session::Session;
///
/// async fn handler(request: http::Request<String>) -> String {
///     match request.extensions().get::<Session>() {
///         Some(session) => format!("hello {}", session.user_id()),
///         None => "no session layer in front of this route".to_owned(),
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Session(Arc<Parts>);

/// What a [`Session`] holds, behind the one reference count its clones share.
struct Parts {
    /// The user id followed by each role, roles separated by NUL.
    text: Box<str>,
    user_len: u32,
    session_id: SessionId,
    /// `iat`, in milliseconds since the epoch (a whole second: the claim's unit).
    issued_at_ms: u64,
    /// `exp`, in milliseconds since the epoch (a whole second: the claim's unit).
    expires_at_ms: u64,
    /// The app's own claims, as the token carried them.
    claims: CustomClaims,
    /// `auth_time`, in milliseconds since the epoch (a whole second); 0 for a token without it.
    auth_time_ms: u64,
    /// `amr`, empty when the token has none.
    amr: Vec<String>,
    /// `acr`.
    acr: Option<Box<str>>,
    /// `cnf.jkt`: the thumbprint of the DPoP key the token is bound to.
    jkt: Option<Box<str>>,
    /// What the revocation check last learnt about this session, for the next request with
    /// the same token: see [`StatusMemo`].
    status: StatusMemo,
}

impl Session {
    /// Builds a session from its parts: one allocation holds the user id and every role.
    /// Times are milliseconds since the epoch.
    pub(crate) fn new<'r>(
        user_id: &str,
        roles: impl Iterator<Item = &'r str> + Clone,
        session_id: SessionId,
        issued_at_ms: u64,
        expires_at_ms: u64,
    ) -> Self {
        let len = user_id.len() + roles.clone().map(|r| r.len() + 1).sum::<usize>();
        let mut stack = [0u8; 256];
        let mut heap;
        let buf: &mut [u8] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap = vec![0u8; len];
            &mut heap[..]
        };
        buf[..user_id.len()].copy_from_slice(user_id.as_bytes());
        let mut at = user_id.len();
        for role in roles {
            buf[at] = 0;
            buf[at + 1..at + 1 + role.len()].copy_from_slice(role.as_bytes());
            at += 1 + role.len();
        }
        let text = Box::from(std::str::from_utf8(buf).expect("joined from &strs"));
        Self(Arc::new(Parts {
            text,
            user_len: user_id.len() as u32,
            session_id,
            issued_at_ms,
            expires_at_ms,
            claims: CustomClaims::default(),
            auth_time_ms: 0,
            amr: Vec::new(),
            acr: None,
            jkt: None,
            status: StatusMemo::default(),
        }))
    }

    /// The same session changed by `edit` (with a fresh status memo, if it was shared).
    fn edit(mut self, edit: impl FnOnce(&mut Parts)) -> Self {
        if Arc::get_mut(&mut self.0).is_none() {
            let parts = &*self.0;
            self = Self(Arc::new(Parts {
                text: parts.text.clone(),
                user_len: parts.user_len,
                session_id: parts.session_id,
                issued_at_ms: parts.issued_at_ms,
                expires_at_ms: parts.expires_at_ms,
                claims: parts.claims.clone(),
                auth_time_ms: parts.auth_time_ms,
                amr: parts.amr.clone(),
                acr: parts.acr.clone(),
                jkt: parts.jkt.clone(),
                status: StatusMemo::default(),
            }));
        }
        if let Some(parts) = Arc::get_mut(&mut self.0) {
            edit(parts);
        }
        self
    }

    /// The same session carrying `claims` (and a fresh status memo, if it was shared).
    pub(crate) fn with_claims(self, claims: CustomClaims) -> Self {
        self.edit(|parts| parts.claims = claims)
    }

    /// The same session carrying the token's `auth_time` (milliseconds), `amr` and `acr`.
    pub(crate) fn with_auth(
        self,
        auth_time_ms: u64,
        amr: Vec<String>,
        acr: Option<String>,
    ) -> Self {
        self.edit(|parts| {
            parts.auth_time_ms = auth_time_ms;
            parts.amr = amr;
            parts.acr = acr.map(String::into_boxed_str);
        })
    }

    /// The same session bound to the DPoP key of thumbprint `jkt` (the token's `cnf.jkt`).
    pub(crate) fn with_jkt(self, jkt: Option<String>) -> Self {
        if jkt.is_none() {
            return self;
        }
        self.edit(|parts| parts.jkt = jkt.map(String::into_boxed_str))
    }

    /// The revocation check's memo on this session and every clone of it.
    #[inline]
    pub(crate) fn status_memo(&self) -> &StatusMemo {
        &self.0.status
    }

    /// The user id (`sub` claim).
    pub fn user_id(&self) -> &str {
        &self.0.text[..self.0.user_len as usize]
    }

    /// The session id (`sid` claim).
    pub fn session_id(&self) -> SessionId {
        self.0.session_id
    }

    /// The roles (`roles` claim), in token order.
    pub fn roles(&self) -> Roles<'_> {
        let rest = &self.0.text[self.0.user_len as usize..];
        Roles(rest.strip_prefix('\0').map(|r| r.split('\0')))
    }

    /// Whether the session has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }

    /// When the access token was issued (`iat`).
    pub fn issued_at(&self) -> SystemTime {
        crate::clock::system_time(self.0.issued_at_ms)
    }

    /// When the access token expires (`exp`); at the latest 9999-12-31, for a token that
    /// claims an `exp` beyond what a `SystemTime` can hold.
    pub fn expires_at(&self) -> SystemTime {
        crate::clock::system_time(self.0.expires_at_ms)
    }

    /// The app's own claims (every member of the token that is not a
    /// [reserved](RESERVED_CLAIMS) one) as `T`: a struct with the fields the app put there at
    /// login or in its refresh hook. Read from what verification kept, shared with the cache of
    /// verified tokens: the token is not decoded again. A session without custom claims reads
    /// as the empty object, so `T` with optional or defaulted fields fits every token.
    ///
    /// ```
    /// use tower_jwt_session::{SessionConfig, SessionManager, manager::NewSession};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tenant {
    ///     tenant: String,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let login = NewSession::new("alice")
    ///     .roles(&["user"])
    ///     .claims(&Tenant { tenant: "acme".into() });
    /// let pair = manager.create_session(login).await?;
    /// let session = manager.verify_access_token(&pair.access_token).await?;
    /// assert_eq!(session.claims::<Tenant>()?.tenant, "acme");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ClaimsError::Mismatch`] when the claims do not fit `T`.
    pub fn claims<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClaimsError> {
        self.0.claims.get()
    }

    /// The app's own claims as they are, e.g. [`as_json`](CustomClaims::as_json) for their
    /// JSON text.
    pub fn custom_claims(&self) -> &CustomClaims {
        &self.0.claims
    }

    /// When the user last proved who they are (`auth_time`): at login or at the last
    /// re-authentication, never moved by a refresh. A token without the claim (issued by a
    /// release before it existed) reads as the Unix epoch: never recent.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_jwt_session::{SessionConfig, SessionManager, manager::NewSession};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let pair = manager
    ///     .create_session(NewSession::new("alice").amr(["pwd", "otp"]).acr("aal2"))
    ///     .await?;
    /// let session = manager.verify_access_token(&pair.access_token).await?;
    /// assert!(session.auth_time() + Duration::from_secs(5) > SystemTime::now());
    /// assert_eq!(session.amr(), ["pwd", "otp"]);
    /// assert_eq!(session.acr(), Some("aal2"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn auth_time(&self) -> SystemTime {
        crate::clock::system_time(self.0.auth_time_ms)
    }

    /// `auth_time` in milliseconds since the epoch.
    #[inline]
    pub(crate) fn auth_time_ms(&self) -> u64 {
        self.0.auth_time_ms
    }

    /// How the user proved who they are then (`amr`, RFC 8176 values such as `pwd`, `otp`):
    /// empty when the credential check named no method.
    pub fn amr(&self) -> &[String] {
        &self.0.amr
    }

    /// The authentication context class reached then (`acr`), if the credential check named
    /// one.
    pub fn acr(&self) -> Option<&str> {
        self.0.acr.as_deref()
    }

    /// The RFC 7638 thumbprint of the DPoP key the token is bound to (its `cnf.jkt`), for a
    /// sender-constrained session: the layer let the request through only with a valid proof
    /// by that key. `None` for a Bearer token.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.0.jkt.as_deref()
    }

    /// `exp`, in milliseconds since the epoch (unclamped).
    #[inline]
    pub(crate) fn expires_at_ms(&self) -> u64 {
        self.0.expires_at_ms
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id())
            .field("session_id", &self.0.session_id)
            .field("roles", &self.roles().collect::<Vec<_>>())
            .field("issued_at", &crate::clock::rfc3339(self.0.issued_at_ms))
            .field("expires_at", &crate::clock::rfc3339(self.0.expires_at_ms))
            .field("claims", &self.0.claims)
            .field("auth_time", &crate::clock::rfc3339(self.0.auth_time_ms))
            .field("amr", &self.0.amr)
            .field("acr", &self.0.acr)
            .finish()
    }
}

/// Iterator over a session's roles.
#[derive(Debug, Clone)]
pub struct Roles<'a>(Option<std::str::Split<'a, char>>);

impl<'a> Iterator for Roles<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        self.0.as_mut()?.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_round_trips() {
        let id = SessionId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        assert!("short".parse::<SessionId>().is_err());
        assert!("!!!!!!!!!!!!!!!!!!!!!!".parse::<SessionId>().is_err());
        assert_ne!(SessionId::random(), id);
    }

    #[test]
    fn session_packs_user_and_roles() {
        let sid = SessionId::random();
        let s = Session::new("alice", ["user", "admin"].into_iter(), sid, 1, 2);
        assert_eq!(s.user_id(), "alice");
        assert_eq!(s.roles().collect::<Vec<_>>(), ["user", "admin"]);
        assert!(s.has_role("admin") && !s.has_role("root"));
        let none = Session::new("bob", std::iter::empty(), sid, 1, 2);
        assert_eq!(none.roles().count(), 0);
        let empty_role = Session::new("carol", [""].into_iter(), sid, 1, 2);
        assert_eq!(empty_role.roles().collect::<Vec<_>>(), [""]);
        let long = "x".repeat(1000);
        let big = Session::new(&long, [long.as_str()].into_iter(), sid, 1, 2);
        assert_eq!(big.user_id(), long);
        assert_eq!(big.roles().next(), Some(long.as_str()));
    }
}
