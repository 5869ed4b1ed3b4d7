//! Tokens: the bearer tokens that say who calls, and the tokens the server signs itself.
//!
//! - [`keys`]: the server's own HS256 tokens (its bearer tokens, page tokens, cursors,
//!   read-only card links), signed with one secret;
//! - [`jwks`]: the platform's identity provider's signing keys, read from its key sets;
//! - [`claims`]: how the provider's claims name the caller (subject, domain, roles);
//! - [`bearer`]: a bearer token verified into a [`Principal`](crate::domain::caller::Principal),
//!   whichever kind it is.
//!
//! The per-RPC layer ([`crate::rpc`]) verifies each request's token; handlers check the
//! principal's permissions; the session resolves it into a caller. A low module: it imports
//! `domain`, `error` and [`crate::metrics`] (a leaf), so that every layer above may sign or
//! verify.

pub mod bearer;
pub mod claims;
pub mod jwks;
pub mod keys;

pub use keys::{
    CardLink, CardLinkError, Claims, PageTokenError, READ_ONLY_LINK_TTL, TokenError, TokenKeys,
    fingerprint, parse_permissions, parse_ttl,
};
