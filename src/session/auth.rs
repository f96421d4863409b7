//! How the user last proved who they are: [`AuthContext`], the `auth_time`, `amr` and `acr`
//! of a session's access tokens (OpenID Connect Core §2, RFC 9470).

use super::ClaimsError;

/// Most authentication method references (`amr`) a session may carry.
pub const MAX_AMR: usize = 8;
/// Longest `amr` value or `acr`, in bytes.
pub const MAX_AUTH_VALUE_LEN: usize = 64;

/// When and how the user of a session last proved who they are: set by a credential check
/// (login, re-authentication), kept by every refresh, and put into every access token of the
/// session as `auth_time` (whole seconds), `amr` (when not empty) and `acr` (when set).
///
/// Stores keep it with the record (sealed where the store seals); a record written before it
/// existed reads as authenticated at its creation, with no `amr` or `acr`.
///
/// ```
/// use tower_jwt_session::session::AuthContext;
///
/// let context = AuthContext::new(1_700_000_000_000, ["pwd", "otp"], Some("urn:example:aal2"))?;
/// assert_eq!(context.amr, ["pwd", "otp"]);
/// // Values a token cannot carry are refused, naming what is wrong.
/// assert!(AuthContext::new(0, [""], None::<String>).is_err());
/// # Ok::<(), tower_jwt_session::session::ClaimsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthContext {
    /// When the user last proved who they are, in milliseconds since the Unix epoch (the unit
    /// of the store's times; tokens carry it in whole seconds).
    pub auth_time: u64,
    /// The authentication methods used then (RFC 8176: `pwd`, `otp`, `hwk`, `mfa`, …), in the
    /// order the credential check gave them; empty when it named none.
    pub amr: Vec<String>,
    /// The authentication context class reference the check reached, if it named one.
    pub acr: Option<String>,
    /// The RFC 7638 thumbprint of the DPoP key (RFC 9449) the session is bound to, when the
    /// login carried a proof: its access tokens carry it as `cnf.jkt`, and the session is used
    /// and refreshed only with proofs by that key. Set at login, kept for the session's life.
    pub jkt: Option<String>,
}

impl AuthContext {
    /// An authentication at `auth_time` (milliseconds since the Unix epoch) by the methods
    /// `amr`, reaching the class `acr`.
    ///
    /// # Errors
    /// [`ClaimsError::InvalidAuthContext`] for more than [`MAX_AMR`] methods, or an empty value,
    /// one longer than [`MAX_AUTH_VALUE_LEN`] bytes or one holding a control character.
    pub fn new(
        auth_time: u64,
        amr: impl IntoIterator<Item = impl Into<String>>,
        acr: Option<impl Into<String>>,
    ) -> Result<Self, ClaimsError> {
        let context = Self {
            auth_time,
            amr: amr.into_iter().map(Into::into).collect(),
            acr: acr.map(Into::into),
            jkt: None,
        };
        context.check()?;
        Ok(context)
    }

    /// An authentication at `auth_time` that names no method or class.
    pub fn at(auth_time: u64) -> Self {
        Self {
            auth_time,
            ..Self::default()
        }
    }

    /// The same context, bound to the DPoP key of thumbprint `jkt`.
    pub fn bound_to(mut self, jkt: impl Into<String>) -> Self {
        self.jkt = Some(jkt.into());
        self
    }

    /// Refuses what a token cannot carry, or what a challenge or a log could be confused by.
    pub(crate) fn check(&self) -> Result<(), ClaimsError> {
        check_methods(&self.amr, self.acr.as_deref())?;
        if self.jkt.as_deref().is_some_and(|jkt| !is_thumbprint(jkt)) {
            return Err(ClaimsError::InvalidAuthContext(
                "a DPoP key thumbprint (jkt) is 43 characters of base64url",
            ));
        }
        Ok(())
    }
}

/// An RFC 7638 SHA-256 thumbprint: 43 characters of unpadded base64url.
pub(crate) fn is_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43
        && jkt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The rules of [`AuthContext::new`] for `amr` and `acr`.
fn check_methods(amr: &[String], acr: Option<&str>) -> Result<(), ClaimsError> {
    if amr.len() > MAX_AMR {
        return Err(ClaimsError::InvalidAuthContext(
            "at most 8 authentication methods (amr)",
        ));
    }
    let bad =
        |v: &str| v.is_empty() || v.len() > MAX_AUTH_VALUE_LEN || v.chars().any(char::is_control);
    if amr.iter().any(|m| bad(m)) {
        return Err(ClaimsError::InvalidAuthContext(
            "an authentication method (amr) must be 1 to 64 bytes without control characters",
        ));
    }
    if acr.is_some_and(bad) {
        return Err(ClaimsError::InvalidAuthContext(
            "the authentication context class (acr) must be 1 to 64 bytes without control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_a_token_cannot_carry_are_refused() {
        assert!(AuthContext::new(1, ["pwd"], Some("aal1")).is_ok());
        assert!(AuthContext::new(1, Vec::<String>::new(), None::<String>).is_ok());
        assert!(AuthContext::new(1, ["x"; 9], None::<String>).is_err());
        assert!(AuthContext::new(1, ["a\nb"], None::<String>).is_err());
        assert!(AuthContext::new(1, ["pwd"], Some("")).is_err());
        assert!(AuthContext::new(1, ["y".repeat(65)], None::<String>).is_err());
    }
}
