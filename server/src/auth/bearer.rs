//! Bearer tokens verified into a [`Principal`]: the server's own (HS256, `--jwt-secret`) and
//! the platform's identity provider's (RS256, PS256, ES256, ES384 or EdDSA with a key of its
//! key sets, [`super::jwks`]), either or both.
//!
//! The token's header picks the path: HS256 goes to the server's secret and nothing else;
//! the asymmetric algorithms go to the provider's keys, each key verifying only the algorithms
//! of its own type; anything else (`none`, HS384, RS512, ...) is refused. A provider's token
//! must carry `exp`, and `iss` and `aud` when `--jwt-issuer` and `--jwt-audience` are given;
//! its claims are read into a principal by the configured [`ClaimMap`].
//!
//! Verified tokens are kept, by their exact text, with the principal they name and their
//! expiry: a desktop or a service sends the same token with every call, and checking its
//! signature and decoding its claims again each time was about a tenth of the instructions a
//! server spends on a destination search with HS256 (BENCHMARKS.md, run N), several times that
//! with RSA. What a token says cannot change (the signature covers every byte of it), so only
//! its expiry is checked again, with the same rule as the first time; a token that failed is
//! never kept, and a different text, even one byte of it, is verified in full. When a read
//! changes the provider's keys, its tokens are verified in full again, so a removed key stops
//! verifying at once, cached or not. A refused token costs at most that lookup and, for a key id no set holds, a read of the key sets no more
//! often than `--jwt-jwks-min-refresh`.
//!
//! A low module: it imports `domain`, `error` and [`crate::metrics`] (for the key sets).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};

use super::claims::ClaimMap;
use super::jwks::{Jwks, JwksConfig, Lookup};
use super::keys::{TokenError, TokenKeys};
use crate::domain::caller::Principal;
use crate::metrics::Metrics;

/// Tokens verified at most this many at once in the cache; past it the cache is emptied (it
/// refills from the tokens in use).
const MAX_VERIFIED: usize = 10_000;

/// The algorithms an identity provider's token may be signed with.
pub const PROVIDER_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Which bearer tokens the server accepts.
#[derive(Debug, Clone, Default)]
pub struct BearerConfig {
    /// The identity provider's key sets (`None`: its tokens are refused).
    pub jwks: Option<JwksConfig>,
    /// Accepted `iss` values of a provider's tokens (empty: any).
    pub issuers: Vec<String>,
    /// Accepted `aud` values of a provider's tokens (empty: not checked).
    pub audiences: Vec<String>,
    /// Clock skew allowed on a provider's token's `exp` and `nbf`.
    pub leeway: Duration,
    /// How a provider's claims name the caller.
    pub claims: ClaimMap,
    /// Create an unknown subject of a known domain on first use (else TOKEN_USER_UNKNOWN).
    pub provision_users: bool,
}

/// A verified token's principal and expiry, and for a provider's token the generation of the
/// key sets it was verified with.
#[derive(Debug, Clone)]
struct Verified {
    principal: Arc<Principal>,
    exp: i64,
    keys: Option<u64>,
}

/// Verifies bearer tokens; cheap to share behind an `Arc`.
pub struct Verifier {
    /// The server's own tokens (`None`: refused).
    local: Option<TokenKeys>,
    jwks: Option<Arc<Jwks>>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
    claims: ClaimMap,
    verified: RwLock<HashMap<String, Verified>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("local", &self.local.is_some())
            .field("jwks", &self.jwks)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier of the server's own tokens signed with `secret` (`None`: refused) and of the
    /// tokens `config` describes; an error names the setting at fault.
    pub fn new(
        secret: Option<&[u8]>,
        config: &BearerConfig,
        metrics: Metrics,
    ) -> Result<Self, String> {
        let jwks = config
            .jwks
            .as_ref()
            .map(|c| Jwks::new(c, metrics).map(Arc::new))
            .transpose()?;
        Ok(Self {
            local: secret.filter(|s| !s.is_empty()).map(TokenKeys::new),
            jwks,
            issuers: config.issuers.clone(),
            audiences: config.audiences.clone(),
            leeway: config.leeway.as_secs(),
            claims: config.claims.clone(),
            verified: RwLock::default(),
        })
    }

    /// Reads the identity provider's keys now, and then on their schedule until `shutdown`.
    pub async fn start(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        if let Some(jwks) = &self.jwks {
            jwks.clone().start(shutdown).await;
        }
    }

    /// The identity provider's key sets, when configured.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// Reads an `authorization` header's bearer token and verifies it.
    pub async fn authenticate(&self, header: Option<&[u8]>) -> Result<Arc<Principal>, TokenError> {
        let header = header.ok_or(TokenError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| TokenError::Malformed)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(TokenError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(TokenError::Malformed);
        }
        self.verify(token.trim()).await
    }

    /// Verifies a token and returns the principal it names.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(known) = self.known(token, now) {
            return known;
        }
        let keys = self.key_generation();
        let principal = Arc::new(self.verify_in_full(token).await?);
        let exp = principal.expires_at;
        let keys = match principal.identity {
            crate::domain::caller::Identity::Local { .. } => None,
            crate::domain::caller::Identity::External { .. } => keys,
        };
        if let Ok(mut cache) = self.verified.write() {
            if cache.len() >= MAX_VERIFIED {
                cache.clear();
            }
            cache.insert(
                token.to_owned(),
                Verified {
                    principal: principal.clone(),
                    exp,
                    keys,
                },
            );
        }
        Ok(principal)
    }

    /// The generation of the provider's key sets, when configured.
    fn key_generation(&self) -> Option<u64> {
        self.jwks.as_ref().map(|j| j.generation())
    }

    /// A token verified before, at `now` (Unix seconds): its principal, or expired. A
    /// provider's token verified before its key sets last changed is verified again (its key
    /// may be gone).
    fn known(&self, token: &str, now: i64) -> Option<Result<Arc<Principal>, TokenError>> {
        let cache = self.verified.read().ok()?;
        let v = cache.get(token)?;
        if v.keys.is_some() && v.keys != self.key_generation() {
            return None;
        }
        Some(
            if v.exp.saturating_add(self.leeway_for(&v.principal)) < now {
                Err(TokenError::Expired)
            } else {
                Ok(v.principal.clone())
            },
        )
    }

    /// The leeway the token's kind gets (the server's own tokens none).
    fn leeway_for(&self, principal: &Principal) -> i64 {
        match principal.identity {
            crate::domain::caller::Identity::Local { .. } => 0,
            crate::domain::caller::Identity::External { .. } => {
                i64::try_from(self.leeway).unwrap_or(0)
            }
        }
    }

    async fn verify_in_full(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("not a JWT: {e}")))?;
        match header.alg {
            Algorithm::HS256 => match &self.local {
                Some(keys) => keys.verify(token),
                None => Err(TokenError::Invalid(
                    "HS256 tokens are not accepted here: use the identity provider's".into(),
                )),
            },
            alg if PROVIDER_ALGORITHMS.contains(&alg) => {
                self.verify_provider(token, alg, header.kid.as_deref())
                    .await
            }
            alg => Err(TokenError::Invalid(format!(
                "tokens signed with {alg:?} are not accepted"
            ))),
        }
    }

    /// A token of the identity provider, signed with `alg` by the key `kid`.
    async fn verify_provider(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Principal, TokenError> {
        let jwks = self.jwks.as_ref().ok_or_else(|| {
            TokenError::Invalid(format!(
                "{alg:?} tokens are not accepted here: no identity provider is configured"
            ))
        })?;
        let unknown = || {
            TokenError::Invalid(format!(
                "signed with a key the identity provider does not publish (kid {:?})",
                kid.unwrap_or_default()
            ))
        };
        let keys = match jwks.lookup(kid, alg) {
            Lookup::Found(keys) => keys,
            Lookup::UnknownKid => {
                if !jwks.refresh_for_unknown_key().await {
                    return Err(unknown());
                }
                match jwks.lookup(kid, alg) {
                    Lookup::Found(keys) => keys,
                    Lookup::UnknownKid => return Err(unknown()),
                }
            }
        };
        if keys.is_empty() {
            return Err(TokenError::Invalid(format!(
                "no key of the identity provider's verifies {alg:?} tokens{}",
                kid.map(|k| format!(" as key {k:?}")).unwrap_or_default()
            )));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if !self.issuers.is_empty() {
            validation.set_issuer(&self.issuers);
            required.push("iss");
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let mut last = TokenError::Invalid("the signature does not verify".into());
        for key in keys {
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => {
                    let exp = data
                        .claims
                        .get("exp")
                        .and_then(serde_json::Value::as_i64)
                        .ok_or_else(|| TokenError::Invalid("exp is not a number".into()))?;
                    return self
                        .claims
                        .principal(&data.claims, exp)
                        .map_err(TokenError::Invalid);
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::ExpiredSignature => return Err(TokenError::Expired),
                        K::ImmatureSignature => {
                            return Err(TokenError::Invalid("the token is not valid yet".into()));
                        }
                        K::InvalidIssuer => {
                            return Err(TokenError::Invalid("its issuer is not accepted".into()));
                        }
                        K::InvalidAudience => {
                            return Err(TokenError::Invalid(
                                "it is not meant for this service (aud)".into(),
                            ));
                        }
                        K::MissingRequiredClaim(c) => {
                            return Err(TokenError::Invalid(format!("it has no {c} claim")));
                        }
                        _ => TokenError::Invalid(e.to_string()),
                    };
                }
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::Claims;
    use crate::domain::ids::{DomainId, UserId};

    fn verifier() -> Verifier {
        Verifier::new(
            Some(b"secret"),
            &BearerConfig::default(),
            Metrics::default(),
        )
        .expect("verifier")
    }

    #[tokio::test]
    async fn verified_tokens_are_kept_until_they_expire_and_nothing_else_is() {
        let v = verifier();
        let keys = TokenKeys::new(b"secret");
        let exp = chrono::Utc::now().timestamp() + 60;
        let token = keys
            .mint_claims(&Claims {
                sub: "7".into(),
                domain_id: 3,
                permissions: vec!["contacts.read".into()],
                exp,
                iat: 0,
            })
            .expect("mint");
        let first = v.verify(&token).await.expect("verify");
        assert_eq!(v.verify(&token).await.expect("again"), first);
        // Kept: the same answer without the signature, but its expiry still holds.
        assert!(matches!(v.known(&token, exp), Some(Ok(_))));
        assert!(matches!(
            v.known(&token, exp + 1),
            Some(Err(TokenError::Expired))
        ));
        // One byte of the signature changed is another text: verified in full, and refused.
        let mut altered = token.clone();
        let last = altered.pop().expect("a character");
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            v.verify(&altered).await,
            Err(TokenError::Invalid(_))
        ));
        // Refused tokens are not kept; the cache stays bounded.
        let cached = |v: &Verifier| v.verified.read().map(|c| c.len()).unwrap_or(0);
        assert_eq!(cached(&v), 1);
        for user in 1..=(MAX_VERIFIED as i64 + 5) {
            let t = keys
                .mint(DomainId(1), UserId(user), &[], Duration::from_secs(60))
                .expect("mint");
            v.verify(&t).await.expect("verify");
        }
        assert!(cached(&v) <= MAX_VERIFIED);
    }

    #[tokio::test]
    async fn only_the_configured_kinds_of_token_pass() {
        // No identity provider: its algorithms are refused before any key is looked for.
        let v = verifier();
        let header = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;
        let rs = format!(
            "{}.{}.c2ln",
            base64_url(header),
            base64_url(r#"{"sub":"1","exp":9999999999}"#)
        );
        assert!(
            matches!(v.verify(&rs).await, Err(TokenError::Invalid(m)) if m.contains("no identity provider"))
        );
        // `alg: none` and HS512 are never accepted.
        let none = format!(
            "{}.{}.",
            base64_url(r#"{"alg":"none"}"#),
            base64_url(r#"{"sub":"1","exp":9999999999}"#)
        );
        assert!(matches!(v.verify(&none).await, Err(TokenError::Invalid(_))));
        // No secret: the server's own tokens are refused.
        let provider_only =
            Verifier::new(None, &BearerConfig::default(), Metrics::default()).expect("verifier");
        let token = TokenKeys::new(b"secret")
            .mint(DomainId(1), UserId(1), &[], Duration::from_secs(60))
            .expect("mint");
        assert!(matches!(
            provider_only.verify(&token).await,
            Err(TokenError::Invalid(m)) if m.contains("HS256")
        ));
    }

    fn base64_url(s: &str) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }
}
