//! The server's own tokens, signed with one HS256 secret: client-info bearer tokens (the
//! demo's, the admin command's, the tests'), page tokens, cursors and read-only card links.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::caller::{Caller, Principal};
use crate::domain::ids::{DomainId, UserId};
use crate::domain::permission::Permission;
use crate::domain::search::Position;
use crate::error::{Error, Reason};

/// The claims of a client-info token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a decimal string.
    pub sub: String,
    /// The user's domain.
    pub domain_id: i64,
    /// Permission names; unknown names are ignored.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: i64,
}

/// Why a token was refused (all map to UNAUTHENTICATED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `authorization` header.
    #[error("missing bearer token (send `authorization: Bearer <token>`)")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("malformed authorization header (expected `Bearer <token>`)")]
    Malformed,
    /// Expired.
    #[error("the token has expired")]
    Expired,
    /// Bad signature, bad encoding or bad claims.
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl TokenError {
    /// The `ErrorInfo` reason this refusal is answered with.
    pub fn reason(&self) -> Reason {
        match self {
            TokenError::Missing => Reason::TokenMissing,
            TokenError::Malformed => Reason::TokenMalformed,
            TokenError::Expired => Reason::TokenExpired,
            TokenError::Invalid(_) => Reason::TokenInvalid,
        }
    }
}

/// Signs and verifies tokens with one HS256 secret: the server's own bearer tokens (minted by
/// `client-info-server admin mint-token`), page tokens, cursors and read-only card links.
/// Verified bearer tokens are kept by [`super::bearer::Verifier`], not here.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<secret>)")
    }
}

impl TokenKeys {
    /// Keys for `secret`. An empty secret (which HMAC refuses) is replaced by a random one:
    /// nothing signed with it verifies anywhere else (the command line never passes one).
    pub fn new(secret: &[u8]) -> Self {
        let random: [u8; 32] = rand::random();
        let secret = if secret.is_empty() {
            &random[..]
        } else {
            secret
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let (encoding, decoding) = match (
            EncodingKey::from_secret(secret),
            DecodingKey::from_secret(secret),
        ) {
            (Ok(e), Ok(d)) => (e, d),
            // Only an empty secret is refused, and it was replaced above.
            _ => unreachable!("a non-empty HMAC secret is always a key"),
        };
        Self {
            encoding,
            decoding,
            validation,
        }
    }

    /// Mints a token for `user` of `domain` with `permissions`, valid for `ttl` from now.
    pub fn mint(
        &self,
        domain: DomainId,
        user: UserId,
        permissions: &[Permission],
        ttl: Duration,
    ) -> Result<String, Error> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.mint_claims(&Claims {
            sub: user.0.to_string(),
            domain_id: domain.0,
            permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            exp: now.saturating_add(ttl),
            iat: now,
        })
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn mint_claims(&self, claims: &Claims) -> Result<String, Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("cannot sign token: {e}")))
    }

    /// Verifies a client-info bearer token (HS256, this secret): its signature, its expiry
    /// (no leeway) and its claims; the principal it names.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })?;
        let claims = data.claims;
        let user = claims
            .sub
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| TokenError::Invalid("sub must be a positive user id".into()))?;
        if claims.domain_id <= 0 {
            return Err(TokenError::Invalid("domain_id must be positive".into()));
        }
        let caller = Caller {
            user_id: UserId(user),
            domain_id: DomainId(claims.domain_id),
            permissions: claims
                .permissions
                .iter()
                .filter_map(|p| Permission::parse(p))
                .collect(),
        };
        Ok(Principal::local(caller, claims.exp))
    }
}

/// The claims of a page token: where the previous page ended, and which query it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PageClaims {
    /// Always "page", so a page token is never mistaken for anything else.
    typ: String,
    /// Fingerprint of the query (and domain) the token belongs to.
    q: String,
    /// Sort key of the last row of the previous page.
    s: i64,
    /// Id of the last row of the previous page.
    i: i64,
    /// Tiebreak text of the last row of the previous page (absent when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    t: String,
}

/// Why a page token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    /// Not signed by this server, or altered.
    #[error("is not a page token issued by this server")]
    Forged,
    /// Issued for another query.
    #[error("belongs to a different query; start again without a page token")]
    OtherQuery,
}

impl TokenKeys {
    /// Signs a position in the results of the query with `fingerprint`.
    pub fn sign_page(&self, fingerprint: u64, at: &Position) -> Result<String, Error> {
        let claims = PageClaims {
            typ: "page".into(),
            q: format!("{fingerprint:016x}"),
            s: at.sort_key,
            i: at.id,
            t: at.tiebreak.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("cannot sign page token: {e}")))
    }

    /// Verifies a page token for the query with `fingerprint`; returns the position it holds.
    pub fn verify_page(&self, token: &str, fingerprint: u64) -> Result<Position, PageTokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_required_spec_claims::<&str>(&[]);
        let claims = jsonwebtoken::decode::<PageClaims>(token, &self.decoding, &validation)
            .map_err(|_| PageTokenError::Forged)?
            .claims;
        if claims.typ != "page" {
            return Err(PageTokenError::Forged);
        }
        if claims.q != format!("{fingerprint:016x}") {
            return Err(PageTokenError::OtherQuery);
        }
        Ok(Position {
            sort_key: claims.s,
            tiebreak: claims.t,
            id: claims.i,
        })
    }
}

/// The claims of a cursor token: a position that is text (FindDuplicates' shared values).
#[derive(Debug, Serialize, Deserialize)]
struct CursorClaims {
    /// Always "cursor".
    typ: String,
    /// Fingerprint of the query (and domain) the token belongs to.
    q: String,
    /// The position.
    c: String,
}

impl TokenKeys {
    /// Signs a text position in the results of the query with `fingerprint`.
    pub fn sign_cursor(&self, fingerprint: u64, cursor: &str) -> Result<String, Error> {
        let claims = CursorClaims {
            typ: "cursor".into(),
            q: format!("{fingerprint:016x}"),
            c: cursor.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("cannot sign page token: {e}")))
    }

    /// Verifies a cursor token for the query with `fingerprint`; returns the position.
    pub fn verify_cursor(&self, token: &str, fingerprint: u64) -> Result<String, PageTokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_required_spec_claims::<&str>(&[]);
        let claims = jsonwebtoken::decode::<CursorClaims>(token, &self.decoding, &validation)
            .map_err(|_| PageTokenError::Forged)?
            .claims;
        if claims.typ != "cursor" {
            return Err(PageTokenError::Forged);
        }
        if claims.q != format!("{fingerprint:016x}") {
            return Err(PageTokenError::OtherQuery);
        }
        Ok(claims.c)
    }
}

/// How long a read-only card link stays valid.
pub const READ_ONLY_LINK_TTL: Duration = Duration::from_secs(3600);

/// The claims of a read-only card link.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CardLinkClaims {
    /// Always "card".
    typ: String,
    /// The domain the link belongs to.
    d: i64,
    /// The contact it opens.
    c: i64,
    /// Expiry, seconds since the Unix epoch.
    exp: i64,
    /// Issued at, seconds since the Unix epoch (links of earlier releases have none: their
    /// expiry less [`READ_ONLY_LINK_TTL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// The recorded link's id (CreateReadOnlyLink's links; the links of summary views are not
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<i64>,
}

/// What a verified read-only link says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardLink {
    /// The domain it belongs to.
    pub domain: DomainId,
    /// The contact it opens.
    pub contact: i64,
    /// The recorded link's id (`None`: a summary view's link, not recorded).
    pub id: Option<i64>,
    /// When it was issued, seconds since the Unix epoch.
    pub issued_at: i64,
}

/// Why a read-only link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardLinkError {
    /// Past its expiry.
    #[error("the read-only link has expired; ask for a new one")]
    Expired,
    /// Not signed by this server, altered, or not a card link.
    #[error("the read-only link is not valid")]
    Invalid,
}

impl TokenKeys {
    /// A signed link to the read-only card of `contact` in `domain`, valid for `ttl`, naming
    /// the recorded link `id` when there is one; returns the link and its expiry (Unix
    /// seconds).
    pub fn sign_card_link(
        &self,
        domain: DomainId,
        contact: i64,
        ttl: Duration,
        id: Option<i64>,
    ) -> Result<(String, i64), Error> {
        let now = chrono::Utc::now().timestamp();
        let exp = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
        let claims = CardLinkClaims {
            typ: "card".into(),
            d: domain.0,
            c: contact,
            exp,
            iat: Some(now),
            jti: id,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("cannot sign link: {e}")))?;
        Ok((token, exp))
    }

    /// Verifies a read-only link's signature and expiry (whether it was revoked is the
    /// store's to say).
    pub fn verify_card_link(&self, token: &str) -> Result<CardLink, CardLinkError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<CardLinkClaims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => CardLinkError::Expired,
                _ => CardLinkError::Invalid,
            })?
            .claims;
        if claims.typ != "card" {
            return Err(CardLinkError::Invalid);
        }
        let ttl = i64::try_from(READ_ONLY_LINK_TTL.as_secs()).unwrap_or(0);
        Ok(CardLink {
            domain: DomainId(claims.d),
            contact: claims.c,
            id: claims.jti,
            issued_at: claims.iat.unwrap_or(claims.exp.saturating_sub(ttl)),
        })
    }
}

/// A stable 64-bit FNV-1a hash (the same on every replica and release), for fingerprints.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Parses a comma-separated permission list (`contacts.read,contacts.write`).
pub fn parse_permissions(list: &str) -> Result<Vec<Permission>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            Permission::parse(name).ok_or_else(|| {
                let known: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown permission {name:?} (known: {})", known.join(", "))
            })
        })
        .collect()
}

/// Parses a positive duration such as `500ms`, `90s`, `15m`, `1h30m`, `7d` (humantime's
/// syntax; a bare number is seconds).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let parsed = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        humantime::parse_duration(&format!("{s}s"))
    } else {
        humantime::parse_duration(s)
    };
    let d = parsed.map_err(|e| {
        format!("{s:?} is not a duration ({e}; for example 500ms, 90s, 15m, 1h30m, 7d)")
    })?;
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify() {
        let keys = TokenKeys::new(b"secret");
        let token = keys
            .mint(
                DomainId(3),
                UserId(7),
                &[Permission::ContactsRead],
                Duration::from_secs(60),
            )
            .expect("mint");
        let principal = keys.verify(&token).expect("verify");
        let caller = principal
            .known_caller()
            .expect("a client-info token names its caller");
        assert_eq!(caller.user_id, UserId(7));
        assert_eq!(caller.domain_id, DomainId(3));
        assert!(caller.has(Permission::ContactsRead));
        assert!(!caller.has(Permission::ContactsWrite));
    }

    #[test]
    fn forged_and_expired_tokens_fail() {
        let keys = TokenKeys::new(b"secret");
        let other = TokenKeys::new(b"other");
        let token = other
            .mint(DomainId(1), UserId(1), &[], Duration::from_secs(60))
            .expect("mint");
        assert!(matches!(keys.verify(&token), Err(TokenError::Invalid(_))));
        let expired = keys
            .mint_claims(&Claims {
                sub: "1".into(),
                domain_id: 1,
                permissions: vec![],
                exp: chrono::Utc::now().timestamp() - 10,
                iat: 0,
            })
            .expect("mint");
        assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
        assert!(matches!(
            keys.verify("not.a.token"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn page_tokens_are_bound_to_their_query() {
        let keys = TokenKeys::new(b"secret");
        let at = |tiebreak: &str| Position {
            sort_key: 7,
            tiebreak: tiebreak.into(),
            id: 99,
        };
        let t = keys.sign_page(42, &at("")).expect("sign");
        assert_eq!(keys.verify_page(&t, 42), Ok(at("")));
        let named = keys.sign_page(42, &at("amelia smith")).expect("sign");
        assert_eq!(keys.verify_page(&named, 42), Ok(at("amelia smith")));
        assert_eq!(keys.verify_page(&t, 43), Err(PageTokenError::OtherQuery));
        assert_eq!(
            TokenKeys::new(b"other").verify_page(&t, 42),
            Err(PageTokenError::Forged)
        );
        assert_eq!(keys.verify_page("garbage", 42), Err(PageTokenError::Forged));
        let bearer = keys
            .mint(DomainId(1), UserId(1), &[], Duration::from_secs(60))
            .expect("mint");
        assert_eq!(keys.verify_page(&bearer, 42), Err(PageTokenError::Forged));
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }

    #[test]
    fn card_links_verify_and_expire() {
        let keys = TokenKeys::new(b"secret");
        let (link, exp) = keys
            .sign_card_link(DomainId(2), 9, Duration::from_secs(60), Some(4))
            .expect("sign");
        assert!(exp > chrono::Utc::now().timestamp());
        let verified = keys.verify_card_link(&link).expect("valid");
        assert_eq!(
            (verified.domain, verified.contact, verified.id),
            (DomainId(2), 9, Some(4))
        );
        assert_eq!(
            TokenKeys::new(b"x").verify_card_link(&link),
            Err(CardLinkError::Invalid)
        );
        let page = keys
            .sign_page(
                1,
                &Position {
                    sort_key: 2,
                    tiebreak: String::new(),
                    id: 3,
                },
            )
            .expect("page");
        assert_eq!(keys.verify_card_link(&page), Err(CardLinkError::Invalid));
    }

    #[test]
    fn ttl_and_permission_lists_parse() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_ttl("1x").is_err());
        assert!(parse_ttl("0s").is_err());
        assert_eq!(
            parse_permissions("contacts.read, interactions.handle"),
            Ok(vec![
                Permission::ContactsRead,
                Permission::InteractionsHandle
            ])
        );
        assert!(parse_permissions("contacts.admin").is_err());
    }
}
