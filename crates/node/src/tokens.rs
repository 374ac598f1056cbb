//! Auth tokens as etcd 3.4 hands them out: `--auth-token simple` (the default: random tokens
//! that every member learns through the log, see [`crate::auth`]) or
//! `--auth-token jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m` (signed JSON Web
//! Tokens, through the `jsonwebtoken` crate), and `--auth-token-ttl` (how long a simple token
//! lives after its last use, 300 s by default).
//!
//! **JWTs** carry etcd's claims (`username`, `revision`, `exp`) and are checked here, at the
//! edge, off the core task: a signature check costs tens of microseconds, and it needs no
//! replicated state. A token that does not verify (forged, signed with another key or method,
//! malformed) or has expired is refused with etcd's "invalid auth token" while auth is on; the
//! `revision` claim then goes through the same auth-revision check as a simple token's.
//!
//! **Simple-token expiry** is this member's own, as in etcd, where each member's token keeper
//! times its tokens: a token dies once it was not used at this member for the TTL. A member
//! starts a token's clock when it hands the token out or first sees it used; etcd starts it
//! when the member applies the Authenticate, which is when the token was handed out give or
//! take the log's delay, so a client sees the same lifetime.
//!
//! What this must never do: accept a JWT whose signature, algorithm or expiry does not check
//! (no leeway: etcd's library allows none); hold the core task for a signature; grow without
//! bound (the expiry clock forgets the oldest tokens beyond a bound, as the store does).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// etcd's default `--auth-token-ttl`, in seconds.
pub const SIMPLE_TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(300);
/// etcd's default JWT lifetime (`ttl=` in `--auth-token jwt,...`).
pub const JWT_TTL_DEFAULT: Duration = Duration::from_secs(5 * 60);
/// Most simple tokens whose clock a member keeps: twice what the store remembers, so that a
/// token the store still knows is never forgotten here first (which would restart its clock).
const SIMPLE_CLOCKS_MAX: usize = 2 * kv::SIMPLE_TOKENS_MAX;

/// Why `--auth-token` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The flag's shape (etcd's "invalid auth options").
    #[error("--auth-token {flag:?}: {why}")]
    Flag {
        /// The flag as given.
        flag: String,
        /// What is wrong with it.
        why: String,
    },
    /// A key file named by the flag.
    #[error("--auth-token: {option}={path}: {why}")]
    Key {
        /// `pub-key` or `priv-key`.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The claims of etcd's JWTs, in the order etcd's library writes them (sorted by name).
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// When the token expires, in seconds since the Unix epoch.
    exp: i64,
    /// The auth revision the password was checked at.
    revision: u64,
    /// The user.
    username: String,
}

/// A JWT's keys and settings.
pub struct Jwt {
    algorithm: Algorithm,
    /// `None`: a member given only `pub-key` verifies tokens but cannot hand any out (etcd:
    /// "token signing attempted with verify-only key").
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("Jwt")
            .field("algorithm", &self.algorithm)
            .field("signs", &self.encoding.is_some())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// What a JWT said, once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtIdentity {
    /// The `username` claim.
    pub user: String,
    /// The `revision` claim.
    pub auth_revision: u64,
}

/// The kind of token this member hands out and accepts.
#[derive(Debug)]
pub enum TokenKind {
    /// etcd's `simple`.
    Simple,
    /// etcd's `jwt`.
    Jwt(Box<Jwt>),
}

/// This member's tokens: their kind, and the simple tokens' expiry clock.
#[derive(Debug)]
pub struct Tokens {
    kind: TokenKind,
    /// `--client-cert-auth`: a request with no token acts as its client certificate's
    /// common name.
    client_cert_users: bool,
    simple_ttl: Duration,
    clocks: Mutex<SimpleClocks>,
}

/// When each simple token was last used at this member; a token whose TTL ran out stays here,
/// marked dead, so that it is not taken for a token never seen (which would start a clock).
#[derive(Debug, Default)]
struct SimpleClocks {
    last_used: HashMap<String, Option<Instant>>,
    /// First-seen order, to forget the oldest beyond [`SIMPLE_CLOCKS_MAX`].
    order: VecDeque<String>,
}

impl Tokens {
    /// Tokens from etcd's `--auth-token` and `--auth-token-ttl`; reads the key files.
    pub fn from_flags(auth_token: &str, simple_ttl: Duration) -> Result<Tokens, TokenError> {
        Ok(Tokens {
            kind: parse_auth_token(auth_token)?,
            client_cert_users: false,
            simple_ttl,
            clocks: Mutex::new(SimpleClocks::default()),
        })
    }

    /// Simple tokens with etcd's defaults.
    pub fn simple() -> Tokens {
        Tokens {
            kind: TokenKind::Simple,
            client_cert_users: false,
            simple_ttl: SIMPLE_TOKEN_TTL_DEFAULT,
            clocks: Mutex::new(SimpleClocks::default()),
        }
    }

    /// With `--client-cert-auth`: a request with no token acts as its client certificate's
    /// common name, as in etcd.
    pub fn with_client_cert_users(mut self, on: bool) -> Tokens {
        self.client_cert_users = on;
        self
    }

    /// Whether a client certificate's common name names the user of a request with no token.
    pub fn client_cert_users(&self) -> bool {
        self.client_cert_users
    }

    /// The kind of token served.
    pub fn kind(&self) -> &TokenKind {
        &self.kind
    }

    /// A JWT for `user`, whose password was checked at `auth_revision`; `None` with simple
    /// tokens. Refused when this member holds only the public key.
    pub fn sign_jwt(&self, user: &str, auth_revision: u64) -> Option<Result<String, String>> {
        match &self.kind {
            TokenKind::Jwt(jwt) => Some(jwt.sign(user, auth_revision)),
            TokenKind::Simple => None,
        }
    }

    /// The user and auth revision a JWT names, if it verifies now; `None` for any token that
    /// does not (forged, another key or algorithm, expired, not a JWT).
    pub fn verify_jwt(&self, token: &str) -> Option<JwtIdentity> {
        match &self.kind {
            TokenKind::Jwt(jwt) => jwt.verify(token),
            TokenKind::Simple => None,
        }
    }

    /// Starts the clock of a simple token this member just handed out.
    pub fn simple_issued(&self, token: &str) {
        let mut clocks = self.lock();
        clocks.touch(token, Instant::now());
    }
}

impl Jwt {
    fn sign(&self, user: &str, auth_revision: u64) -> Result<String, String> {
        let jwt = self;
        let Some(key) = &jwt.encoding else {
            return Err("auth: token signing attempted with verify-only key".to_string());
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let exp = now.saturating_add(jwt.ttl).as_secs();
        let claims = Claims {
            exp: i64::try_from(exp).unwrap_or(i64::MAX),
            revision: auth_revision,
            username: user.to_string(),
        };
        jsonwebtoken::encode(&Header::new(jwt.algorithm), &claims, key)
            .map_err(|e| format!("auth: cannot sign a token: {e}"))
    }

    fn verify(&self, token: &str) -> Option<JwtIdentity> {
        let jwt = self;
        let mut validation = Validation::new(jwt.algorithm);
        validation.leeway = 0;
        validation.validate_exp = true;
        let data = jsonwebtoken::decode::<Claims>(token, &jwt.decoding, &validation).ok()?;
        Some(JwtIdentity {
            user: data.claims.username,
            auth_revision: data.claims.revision,
        })
    }
}

impl Tokens {
    /// Whether a simple token the store knows is still alive at this member, and if so,
    /// restarts its clock (etcd resets a token's TTL at each use).
    pub fn simple_used(&self, token: &str) -> bool {
        let now = Instant::now();
        let mut clocks = self.lock();
        match clocks.last_used.get(token) {
            Some(None) => false,
            Some(Some(last)) if now.saturating_duration_since(*last) >= self.simple_ttl => {
                clocks.last_used.insert(token.to_string(), None);
                false
            }
            _ => {
                clocks.touch(token, now);
                true
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimpleClocks> {
        // Every update leaves the map whole, so a panic elsewhere cannot leave it torn.
        self.clocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SimpleClocks {
    fn touch(&mut self, token: &str, now: Instant) {
        if self
            .last_used
            .insert(token.to_string(), Some(now))
            .is_none()
        {
            self.order.push_back(token.to_string());
            while self.order.len() > SIMPLE_CLOCKS_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.last_used.remove(&old);
                }
            }
        }
        debug_assert_eq!(self.order.len(), self.last_used.len());
    }
}

/// etcd's `--auth-token`: a kind, then `key=value` options (`decomposeOpts`).
fn parse_auth_token(flag: &str) -> Result<TokenKind, TokenError> {
    let bad = |why: String| TokenError::Flag {
        flag: flag.to_string(),
        why,
    };
    let mut parts = flag.split(',');
    let kind = parts.next().unwrap_or_default();
    let mut options: HashMap<&str, &str> = HashMap::new();
    for part in parts {
        let Some((k, v)) = part.split_once('=') else {
            return Err(bad(format!("option {part:?} is not key=value")));
        };
        if options.insert(k, v).is_some() {
            return Err(bad(format!("option {k:?} given twice")));
        }
    }
    match kind {
        "simple" => {
            if let Some(k) = options.keys().next() {
                return Err(bad(format!("simple tokens take no options ({k:?} given)")));
            }
            Ok(TokenKind::Simple)
        }
        "jwt" => Ok(TokenKind::Jwt(Box::new(parse_jwt(&options).map_err(
            |e| match e {
                TokenError::Flag { why, .. } => bad(why),
                other => other,
            },
        )?))),
        other => Err(bad(format!(
            "unknown token kind {other:?}; give `simple` or `jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m`"
        ))),
    }
}

fn parse_jwt(options: &HashMap<&str, &str>) -> Result<Jwt, TokenError> {
    let flag_error = |why: String| TokenError::Flag {
        flag: String::new(),
        why,
    };
    for k in options.keys() {
        if !["sign-method", "pub-key", "priv-key", "ttl"].contains(k) {
            return Err(flag_error(format!(
                "unknown jwt option {k:?}; etcd's are sign-method, pub-key, priv-key and ttl"
            )));
        }
    }
    let ttl = match options.get("ttl") {
        Some(t) if !t.is_empty() => {
            parse_go_duration(t).map_err(|e| flag_error(format!("ttl={t}: {e}")))?
        }
        _ => JWT_TTL_DEFAULT,
    };
    let method = options.get("sign-method").copied().unwrap_or_default();
    let algorithm = match method {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "ES512" => {
            return Err(flag_error(
                "sign-method=ES512 is not supported by this build (ring has no P-521); \
                 use ES256 or ES384"
                    .to_string(),
            ))
        }
        _ => {
            return Err(flag_error(format!(
                "invalid auth method: sign-method={method:?}; give one of RS256, RS384, RS512, \
                 PS256, PS384, PS512, ES256, ES384, HS256, HS384, HS512"
            )))
        }
    };
    let read = |option: &'static str| -> Result<Option<(PathBuf, Vec<u8>)>, TokenError> {
        match options.get(option) {
            Some(p) if !p.is_empty() => {
                let path = PathBuf::from(p);
                let bytes = std::fs::read(&path).map_err(|e| TokenError::Key {
                    option,
                    path: path.clone(),
                    why: format!("cannot read it: {e}"),
                })?;
                Ok(Some((path, bytes)))
            }
            _ => Ok(None),
        }
    };
    let public = read("pub-key")?;
    let private = read("priv-key")?;
    let key_error = |option: &'static str, path: &PathBuf, e: String| TokenError::Key {
        option,
        path: path.clone(),
        why: e,
    };
    let (encoding, decoding) = match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            // etcd: the priv-key file's bytes are the shared secret.
            let Some((_, secret)) = private else {
                return Err(flag_error(
                    "auth: missing key data: HMAC methods need priv-key (the shared secret)"
                        .to_string(),
                ));
            };
            (
                Some(EncodingKey::from_secret(&secret)),
                DecodingKey::from_secret(&secret),
            )
        }
        _ => {
            let ec = matches!(algorithm, Algorithm::ES256 | Algorithm::ES384);
            let encoding = match &private {
                Some((path, pem)) => Some(
                    if ec {
                        EncodingKey::from_ec_pem(pem)
                    } else {
                        EncodingKey::from_rsa_pem(pem)
                    }
                    .map_err(|e| {
                        key_error(
                            "priv-key",
                            path,
                            format!(
                                "not a PEM {} private key: {e}",
                                if ec { "PKCS#8 EC" } else { "RSA" }
                            ),
                        )
                    })?,
                ),
                None => None,
            };
            let decoding = match (&public, &private) {
                (Some((path, pem)), _) => if ec {
                    DecodingKey::from_ec_pem(pem)
                } else {
                    DecodingKey::from_rsa_pem(pem)
                }
                .map_err(|e| key_error("pub-key", path, format!("not a PEM public key: {e}")))?,
                (None, Some((path, pem))) => {
                    public_of(algorithm, pem).map_err(|e| key_error("priv-key", path, e))?
                }
                (None, None) => {
                    return Err(flag_error(
                        "auth: missing key data: give pub-key, priv-key or both".to_string(),
                    ))
                }
            };
            (encoding, decoding)
        }
    };
    let jwt = Jwt {
        algorithm,
        encoding,
        decoding,
        ttl,
    };
    // Both keys given: they must be one pair (etcd's ErrKeyMismatch), checked by a round trip.
    if let Ok(token) = jwt.sign("probe", 1) {
        if jwt.verify(&token).is_none() {
            return Err(flag_error(
                "auth: public and private keys don't match".to_string(),
            ));
        }
    }
    Ok(jwt)
}

/// The public key of a private key given alone (etcd verifies with it), for RSA and ECDSA.
fn public_of(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, String> {
    use ring::signature::KeyPair;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivateKeyDer;
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("not a PEM key: {e}"))?;
    match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => {
            let PrivateKeyDer::Pkcs8(der) = key else {
                return Err("an EC key must be PKCS#8 (BEGIN PRIVATE KEY)".to_string());
            };
            let alg = if algorithm == Algorithm::ES256 {
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                alg,
                der.secret_pkcs8_der(),
                &ring::rand::SystemRandom::new(),
            )
            .map_err(|e| format!("not an EC key for {algorithm:?}: {e}"))?;
            Ok(DecodingKey::from_ec_der(pair.public_key().as_ref()))
        }
        _ => {
            let pair = match key {
                PrivateKeyDer::Pkcs1(der) => {
                    ring::signature::RsaKeyPair::from_der(der.secret_pkcs1_der())
                }
                PrivateKeyDer::Pkcs8(der) => {
                    ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                }
                _ => return Err("not an RSA private key".to_string()),
            }
            .map_err(|e| format!("not a usable RSA key: {e}"))?;
            Ok(DecodingKey::from_rsa_der(pair.public().as_ref()))
        }
    }
}

/// A duration as Go's `time.ParseDuration` reads it (etcd's flags): `5m`, `1h30m`, `90s`,
/// `1.5h`, `300ms`; a bare `0` is zero.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err("empty duration".to_string());
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {text:?}"))?;
        let (number, tail) = rest.split_at(number_end);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        total += value * seconds;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_as_etcd_reads_them() {
        assert_eq!(parse_go_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("").is_err());
    }

    fn hs(secret: &[u8], ttl: &str) -> Tokens {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secret");
        std::fs::write(&path, secret).expect("write secret");
        let flag = format!(
            "jwt,priv-key={},sign-method=HS256,ttl={ttl}",
            path.display()
        );
        Tokens::from_flags(&flag, SIMPLE_TOKEN_TTL_DEFAULT).expect("jwt flag")
    }

    #[test]
    fn a_jwt_verifies_only_with_its_own_key_and_carries_etcds_claims() {
        let tokens = hs(b"one secret", "5m");
        let token = tokens.sign_jwt("alice", 7).expect("jwt").expect("signs");
        assert_eq!(
            tokens.verify_jwt(&token),
            Some(JwtIdentity {
                user: "alice".into(),
                auth_revision: 7
            })
        );
        let other = hs(b"another secret", "5m");
        assert_eq!(other.verify_jwt(&token), None, "forged: another key");
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(tokens.verify_jwt(&tampered), None, "a changed signature");
        assert_eq!(
            tokens.verify_jwt("abcdefghijklmnop.12"),
            None,
            "a simple token"
        );
    }

    #[test]
    fn an_expired_jwt_is_refused_with_no_leeway() {
        let tokens = hs(b"s", "1s");
        let token = tokens.sign_jwt("alice", 1).expect("jwt").expect("signs");
        // exp is whole seconds; past it by more than a second there is no doubt.
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(tokens.verify_jwt(&token), None);
    }

    #[test]
    fn bad_flags_are_refused_with_what_is_wrong() {
        let err = |f: &str| {
            Tokens::from_flags(f, SIMPLE_TOKEN_TTL_DEFAULT)
                .expect_err(f)
                .to_string()
        };
        assert!(err("paseto").contains("unknown token kind"));
        assert!(err("jwt,sign-method=RS256").contains("missing key data"));
        assert!(err("jwt,sign-method=XX1,priv-key=/x").contains("invalid auth method"));
        assert!(err("jwt,sign-method").contains("not key=value"));
        assert!(err("jwt,colour=red").contains("unknown jwt option"));
        assert!(err("jwt,priv-key=/nonexistent/k,sign-method=RS256").contains("cannot read"));
        assert!(matches!(
            Tokens::from_flags("simple", SIMPLE_TOKEN_TTL_DEFAULT)
                .expect("simple")
                .kind(),
            TokenKind::Simple
        ));
    }

    #[test]
    fn a_simple_token_dies_after_its_ttl_without_use_and_stays_dead() {
        let tokens = Tokens::from_flags("simple", Duration::from_millis(200)).expect("simple");
        tokens.simple_issued("t1");
        assert!(tokens.simple_used("t1"));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!tokens.simple_used("t1"), "expired");
        assert!(!tokens.simple_used("t1"), "and not revived by a second use");
        assert!(
            tokens.simple_used("t2"),
            "a token first seen here starts its clock"
        );
    }
}
