//! [`TokenSettings`]: the keys access tokens are signed and verified with, and the claims and
//! tolerances of verification (issuer, audience, leeway, realm).

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey};

use super::env::Env;
use super::pem_keys;
use super::secret::{Secret, check_secret};
use super::{Algorithm, ConfigError, SessionRules, TokenCacheSettings};

/// An asymmetric key pair (or public key) loaded from PEM.
#[derive(Clone)]
pub(crate) struct PemKey {
    /// The one algorithm this key signs or verifies.
    pub(crate) alg: Algorithm,
    /// The variable or builder method it was given in, for error messages.
    pub(crate) name: &'static str,
    pub(crate) encoding: Option<EncodingKey>,
    pub(crate) decoding: DecodingKey,
}

impl fmt::Debug for PemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemKey")
            .field("alg", &self.alg)
            .field("name", &self.name)
            .field("private_key", &self.encoding.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// How access tokens are signed and verified: the HMAC secret (`JWT_SECRET`, also the key of
/// refresh tokens), older secrets, PEM keys, the algorithm allow-list, `iss`, `aud`, the
/// clock-skew leeway and the `realm` of challenges.
///
/// `Debug` prints no key material.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::TokenSettings;
///
/// let tokens = TokenSettings::new("a-long-random-secret-of-at-least-32-bytes")?
///     .with_issuer("https://auth.example.com")
///     .with_leeway(Duration::from_secs(5));
/// assert_eq!(tokens.issuer(), Some("https://auth.example.com"));
/// assert_eq!(tokens.leeway(), Duration::from_secs(5));
/// # Ok::<(), tower_jwt_session::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenSettings {
    secret: Secret,
    previous_secrets: Vec<Secret>,
    signing_pem: Option<PemKey>,
    verification_pems: Vec<PemKey>,
    hs256_accepted: bool,
    algorithms: Option<Vec<Algorithm>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    realm: String,
    verified_cache: TokenCacheSettings,
}

impl TokenSettings {
    /// `secret` (its raw bytes) as the HMAC key, HS256, no issuer or audience, 30 s leeway,
    /// realm `api`.
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] when the secret is under 32 bytes or is the placeholder
    /// `your-super-secret-jwt-key-here`.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(Self {
            secret: check_secret("JWT_SECRET", secret.as_ref())?,
            previous_secrets: Vec::new(),
            signing_pem: None,
            verification_pems: Vec::new(),
            hs256_accepted: false,
            algorithms: None,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            realm: "api".to_owned(),
            verified_cache: TokenCacheSettings::default(),
        })
    }

    /// Reads `JWT_SECRET` (required), `JWT_PREVIOUS_SECRETS`, `JWT_ALGORITHM`,
    /// `JWT_PRIVATE_KEY` / `JWT_PRIVATE_KEY_FILE`, `JWT_PREVIOUS_PUBLIC_KEYS` /
    /// `JWT_PREVIOUS_PUBLIC_KEYS_FILE`, `JWT_NEXT_PUBLIC_KEYS` / `JWT_NEXT_PUBLIC_KEYS_FILE`,
    /// `JWT_ACCEPT_HS256`, `JWT_ISSUER`, `JWT_AUDIENCE` and `JWT_LEEWAY` from the process
    /// environment.
    ///
    /// `JWT_ALGORITHM` (default `HS256`, keyed by `JWT_SECRET`) may name an asymmetric
    /// algorithm (`EdDSA`, `ES256`, `RS256`, ...); then the private key (a PKCS#8 PEM, inline or
    /// in a file; an inline value may write line breaks as `\n`) signs access tokens. The
    /// previous and next public keys (one or more `PUBLIC KEY` PEM blocks each) are accepted
    /// and published in the JWKS: the next key before it signs, the previous one until the
    /// tokens it signed have expired (the rotation runbook of `docs/deployment.md`).
    ///
    /// Each public key verifies its own algorithm, so a rotation may change the algorithm. An
    /// Ed25519 key verifies `EdDSA`, a P-256 key `ES256`, a P-384 key `ES384`; an RSA key's PEM
    /// cannot say which of `RS256` ... `PS512` it verifies, so a line `alg: NAME` before its
    /// PEM block states it (any key may carry one; it must agree with the key):
    ///
    /// ```text
    /// alg: PS256
    /// -----BEGIN PUBLIC KEY-----
    /// MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA...
    /// -----END PUBLIC KEY-----
    /// ```
    ///
    /// PEM readers (`openssl`) skip such a line, so the file stays a PEM file.
    /// `JWT_ACCEPT_HS256=true` keeps accepting access tokens signed with `JWT_SECRET` while a
    /// private key signs: the previous (or next) "key" of a rotation from (or to) `HS256`.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use tower_jwt_session::config::{ConfigError, TokenSettings};
    ///
    /// let rsa = include_str!("../../tests/keys/rsa_public.pem");
    /// let vars = HashMap::from([
    ///     ("JWT_SECRET", "0123456789abcdef0123456789abcdef".to_owned()),
    ///     ("JWT_PREVIOUS_PUBLIC_KEYS", format!("alg: PS256\n{rsa}")),
    /// ]);
    /// TokenSettings::from_lookup(|k| vars.get(k).cloned())?;
    ///
    /// // Without its `alg:` line, the RSA key is refused, naming the variable.
    /// let vars = HashMap::from([
    ///     ("JWT_SECRET", "0123456789abcdef0123456789abcdef".to_owned()),
    ///     ("JWT_PREVIOUS_PUBLIC_KEYS", rsa.to_owned()),
    /// ]);
    /// let err = TokenSettings::from_lookup(|k| vars.get(k).cloned()).unwrap_err();
    /// assert!(matches!(err, ConfigError::KeyAlgorithm { name: "JWT_PREVIOUS_PUBLIC_KEYS", .. }));
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or malformed; an RSA public key
    /// without its `alg:` line, or an EC key on a curve other than P-256 and P-384, is
    /// [`ConfigError::KeyAlgorithm`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(super::process_env)
    }

    /// As [`from_env`](Self::from_env), through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(&lookup))
    }

    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let secret = env.raw("JWT_SECRET").ok_or(ConfigError::Missing {
            name: "JWT_SECRET",
            hint: "set it to a random string of at least 32 bytes, e.g. the output of `openssl rand -base64 48`",
        })?;
        let mut tokens = Self::new(secret.as_bytes())?;
        for old in env.list("JWT_PREVIOUS_SECRETS").unwrap_or_default() {
            tokens
                .previous_secrets
                .push(check_secret("JWT_PREVIOUS_SECRETS", old.as_bytes())?);
        }
        let keys = pem_keys::read_env_keys(env)?;
        tokens.signing_pem = keys.signing;
        tokens.verification_pems = keys.published;
        tokens.hs256_accepted = env.flag("JWT_ACCEPT_HS256")?.unwrap_or(false);
        if tokens.hs256_accepted && tokens.signing_pem.is_some() {
            tracing::warn!(
                "JWT_ACCEPT_HS256 is on: access tokens signed with JWT_SECRET are accepted beside \
                 those of JWT_ALGORITHM, so whoever holds the secret can still make them; turn it \
                 off once the key rotation is over"
            );
        }
        tokens.issuer = env.get("JWT_ISSUER");
        tokens.audience = env.get("JWT_AUDIENCE");
        if let Some(leeway) = env.duration("JWT_LEEWAY")? {
            tokens.leeway = leeway;
        }
        tokens.verified_cache = TokenCacheSettings::read(env)?;
        Ok(tokens)
    }

    /// Adds an older HMAC secret accepted for verification only, so that rotating `JWT_SECRET`
    /// logs nobody out (`JWT_PREVIOUS_SECRETS`). Tokens are always signed with the current one.
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] as for [`new`](Self::new).
    pub fn with_previous_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.previous_secrets
            .push(check_secret("JWT_PREVIOUS_SECRETS", secret.as_ref())?);
        Ok(self)
    }

    /// Signs access tokens with an asymmetric key (`RS256`, `ES256` or `EdDSA`, ...) instead of
    /// the HMAC secret, so that other services can verify them with the public key alone. The
    /// allow-list then becomes this algorithm (and those of the
    /// [verification keys](Self::with_verification_key_pem)) unless
    /// [`with_allowed_algorithms`](Self::with_allowed_algorithms) says otherwise. The HMAC
    /// secret is still required: it keys the refresh tokens.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when a PEM cannot be parsed for `alg`, or `alg` is an HMAC algorithm;
    /// [`ConfigError::KeyRefused`] when a key is of another type or curve than `alg` needs, an
    /// RSA key has under 2048 bits, or the public key is not the private key's.
    pub fn with_signing_key_pem(
        mut self,
        alg: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        let name = "TokenSettings::with_signing_key_pem";
        let private = pem_keys::load_private(name, alg, private_pem)?;
        let public = pem_keys::load_public(name, alg, public_pem)?;
        pem_keys::check_pair(name, &private, &public)?;
        self.signing_pem = Some(private);
        Ok(self)
    }

    /// As [`with_signing_key_pem`](Self::with_signing_key_pem), with the public key derived
    /// from the private one (`JWT_PRIVATE_KEY`): a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`;
    /// RSA keys also as PKCS#1).
    ///
    /// ```
    /// use tower_jwt_session::config::{Algorithm, TokenSettings};
    ///
    /// let pem = b"-----BEGIN PRIVATE KEY-----
    /// MC4CAQAwBQYDK2VwBCIEIJXAiS6KjV+utZioVnAvWREv3l8Am2IEIveQr7ixe8Om
    /// -----END PRIVATE KEY-----";
    /// let tokens = TokenSettings::new("a-long-random-secret-of-at-least-32-bytes")?
    ///     .with_private_key_pem(Algorithm::EdDSA, pem)?;
    /// // An Ed25519 key does not sign ES256.
    /// assert!(TokenSettings::new("a-long-random-secret-of-at-least-32-bytes")?
    ///     .with_private_key_pem(Algorithm::ES256, pem)
    ///     .is_err());
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`with_signing_key_pem`](Self::with_signing_key_pem).
    pub fn with_private_key_pem(
        mut self,
        alg: Algorithm,
        private_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        self.signing_pem = Some(pem_keys::load_private(
            "TokenSettings::with_private_key_pem",
            alg,
            private_pem,
        )?);
        Ok(self)
    }

    /// Adds a public key accepted for verification and published in the JWKS, e.g. the
    /// previous signing key after a rotation, or the next one before it signs. Its `kid` is
    /// the key's RFC 7638 JWK thumbprint, as for the signing key.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when the PEM cannot be parsed for `alg`;
    /// [`ConfigError::KeyRefused`] as for [`with_signing_key_pem`](Self::with_signing_key_pem).
    pub fn with_verification_key_pem(
        mut self,
        alg: Algorithm,
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        self.verification_pems.push(pem_keys::load_public(
            "TokenSettings::with_verification_key_pem",
            alg,
            public_pem,
        )?);
        Ok(self)
    }

    /// Keeps accepting access tokens signed with the HMAC secret (`HS256`) while a private key
    /// signs (`JWT_ACCEPT_HS256`): during a rotation from `HS256` to an asymmetric key (after
    /// the switch, until the secret's tokens have expired) or back (before the switch, so that
    /// instances not yet switched accept the tokens of those that are). The default is `false`:
    /// with a private key signing, whoever holds the secret cannot make access tokens. With
    /// `HS256` signing it changes nothing.
    pub fn with_hs256_accepted(mut self, accepted: bool) -> Self {
        self.hs256_accepted = accepted;
        self
    }

    /// The algorithms a presented token may use (RFC 8725 §3.1). Each key is also bound to its
    /// own algorithm, so a token whose `alg` does not match its key's is refused even when both
    /// algorithms are listed. The default is `[HS256]`, or the signing key's algorithm; then
    /// those of the verification keys, and `HS256` under
    /// [`with_hs256_accepted`](Self::with_hs256_accepted). Never add an algorithm you do not
    /// sign with.
    pub fn with_allowed_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// The `iss` claim issued and required (`JWT_ISSUER`). The default is none. 1 to 512
    /// bytes without control characters (it is in every token); anything else is refused when
    /// the manager is built.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` claim issued and required (`JWT_AUDIENCE`). The default is none. Bounded as
    /// the issuer is.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Clock-skew allowance for `exp` and `nbf` of presented tokens (`JWT_LEEWAY`). The
    /// default is 30 seconds; large values keep expired tokens usable for longer, so
    /// validation refuses more than [`MAX_LEEWAY`](super::MAX_LEEWAY) (five minutes) or a
    /// leeway as long as the access token's lifetime.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges. The default is `api`.
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The cache of verified access tokens in front of verification
    /// (`JWT_VERIFIED_CACHE_CAPACITY`); see [`TokenCacheSettings`]. The default is on, 10 000
    /// tokens.
    pub fn with_verified_cache(mut self, cache: TokenCacheSettings) -> Self {
        self.verified_cache = cache;
        self
    }

    /// The cache of verified access tokens (`JWT_VERIFIED_CACHE_CAPACITY`).
    pub fn verified_cache(&self) -> &TokenCacheSettings {
        &self.verified_cache
    }

    /// Whether `HS256` tokens are accepted while a private key signs; see
    /// [`with_hs256_accepted`](Self::with_hs256_accepted).
    pub fn hs256_accepted(&self) -> bool {
        self.hs256_accepted
    }

    /// The explicit algorithm allow-list, if one was set (else: the signing key's algorithm).
    pub fn allowed_algorithms(&self) -> Option<&[Algorithm]> {
        self.algorithms.as_deref()
    }

    /// The issuer, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The audience, if any.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The clock-skew leeway.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The `realm` of `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The current HMAC secret.
    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Older HMAC secrets, for verification only.
    pub(crate) fn previous_secrets(&self) -> &[Secret] {
        &self.previous_secrets
    }

    /// The asymmetric signing key, if any.
    pub(crate) fn signing_pem(&self) -> Option<&PemKey> {
        self.signing_pem.as_ref()
    }

    /// Public keys accepted for verification only.
    pub(crate) fn verification_pems(&self) -> &[PemKey] {
        &self.verification_pems
    }

    /// [`validate`](Self::validate), and the leeway against `rules`: it stretches every token's
    /// life, so it is at most [`MAX_LEEWAY`](super::MAX_LEEWAY) and shorter than the access
    /// token's own lifetime.
    pub(crate) fn validate_with(&self, rules: &SessionRules) -> Result<(), ConfigError> {
        let leeway = self.leeway();
        if leeway > super::MAX_LEEWAY {
            return Err(ConfigError::Invalid {
                name: "JWT_LEEWAY",
                value: super::duration::show(leeway),
                expected: "at most 5m (the default is 30s): the leeway is how long after its expiry a token is still accepted, for clocks that disagree by a few seconds",
            });
        }
        let access = rules.access_token_ttl();
        if leeway >= access {
            return Err(ConfigError::Conflict {
                name: "JWT_LEEWAY / JWT_ACCESS_TOKEN_EXPIRY",
                reason: format!(
                    "JWT_LEEWAY is {} but JWT_ACCESS_TOKEN_EXPIRY is {}: every access token would be accepted for more than twice its lifetime",
                    super::duration::show(leeway),
                    super::duration::show(access)
                ),
                fix: "lower JWT_LEEWAY (TokenSettings::with_leeway), to a few seconds".to_owned(),
            });
        }
        self.validate()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.check_one_algorithm_per_key()?;
        check_name_claim("JWT_ISSUER", self.issuer.as_deref())?;
        check_name_claim("JWT_AUDIENCE", self.audience.as_deref())?;
        if self.algorithms.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::Conflict {
                name: "TokenSettings::with_allowed_algorithms",
                reason: "the algorithm allow-list is empty, so no token could ever be accepted"
                    .to_owned(),
                fix: "list the algorithm you sign with, or leave the allow-list unset".to_owned(),
            });
        }
        Ok(())
    }

    /// Refuses a key (one RFC 7638 thumbprint, one `kid`) given for two algorithms: it would
    /// verify both, while its `kid` and its JWKS entry stand for one.
    fn check_one_algorithm_per_key(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<(String, &PemKey)> = Vec::new();
        for pem in self.signing_pem.iter().chain(&self.verification_pems) {
            let Some(kid) = pem_keys::thumbprint(pem) else {
                continue;
            };
            match seen.iter().find(|(seen_kid, _)| *seen_kid == kid) {
                Some((_, first)) if first.alg != pem.alg => {
                    return Err(ConfigError::Conflict {
                        name: pem.name,
                        reason: format!(
                            "{} gives the key {kid} for {}, and {} gives it for {}: a key \
                             verifies one algorithm, the one its `kid` stands for",
                            pem.name, pem.alg, first.name, first.alg
                        ),
                        fix: "use one key per algorithm: make a new key for the new algorithm \
                              (`openssl genpkey`), and state one algorithm for a key everywhere \
                              it is listed"
                            .to_owned(),
                    });
                }
                Some(_) => {}
                None => seen.push((kid, pem)),
            }
        }
        Ok(())
    }
}

/// The longest `iss` or `aud` accepted. Every access token carries them, and a token has a
/// size limit: a long issuer (or one escaped many times over in JSON) would make every login
/// fail. Issuer URLs are far shorter.
pub(crate) const MAX_NAME_CLAIM_LEN: usize = 512;

/// An issuer or audience: 1 to [`MAX_NAME_CLAIM_LEN`] bytes of printable text (RFC 7519's
/// StringOrURI; a control character is a copy-and-paste accident, and one escapes to six bytes
/// in every token).
fn check_name_claim(name: &'static str, value: Option<&str>) -> Result<(), ConfigError> {
    let Some(value) = value else {
        return Ok(());
    };
    if value.is_empty() || value.len() > MAX_NAME_CLAIM_LEN || value.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            name,
            value: value.chars().take(64).collect(),
            expected: "1 to 512 bytes without control characters, such as https://auth.example.com",
        });
    }
    Ok(())
}
