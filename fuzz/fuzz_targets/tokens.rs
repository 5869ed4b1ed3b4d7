//! The server's own tokens (`auth::keys`, one HS256 secret): page tokens and cursors of paged
//! RPCs, read-only card links, bearer tokens and the `authorization` header that carries them.
//!
//! Input: one byte that picks the kind, the values to sign, a mutation (where, what, how), then
//! text (a tiebreak, a cursor, a header, or a token to verify as it is).
//! Properties: nothing panics; a signed value verifies to the same value (page position,
//! cursor, link, caller); for another query it is `OtherQuery`; any change to its text is
//! refused with the precise error (`Forged`, `Invalid`, `TOKEN_INVALID`), never accepted as
//! another value; a token of one kind is never accepted as another kind; an arbitrary text is
//! refused, and an `authorization` header only ever with an UNAUTHENTICATED reason.
#![no_main]

use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use client_info_fuzz::{Reader, mutate};
use client_info_server::auth::bearer::{BearerConfig, Verifier};
use client_info_server::auth::{CardLinkError, PageTokenError, TokenError, TokenKeys};
use client_info_server::domain::ids::{DomainId, UserId};
use client_info_server::domain::permission::Permission;
use client_info_server::domain::search::Position;
use client_info_server::error::Reason;
use client_info_server::metrics::Metrics;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzzing secret";

static KEYS: LazyLock<TokenKeys> = LazyLock::new(|| TokenKeys::new(SECRET));
static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::new(Some(SECRET), &BearerConfig::default(), Metrics::default()).expect("verifier")
});

/// Runs `f` to completion: without an identity provider nothing in it waits.
fn now<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(t) => t,
        Poll::Pending => panic!("verifying a server token waited"),
    }
}

/// A token of another kind is refused by each verifier, with its own error.
fn not_another_kind(token: &str, fp: u64, kind: &str) {
    if kind != "page" {
        assert_eq!(
            KEYS.verify_page(token, fp),
            Err(PageTokenError::Forged),
            "{kind} as page"
        );
    }
    if kind != "cursor" {
        assert_eq!(
            KEYS.verify_cursor(token, fp),
            Err(PageTokenError::Forged),
            "{kind} as cursor"
        );
    }
    if kind != "card" {
        assert_eq!(
            KEYS.verify_card_link(token),
            Err(CardLinkError::Invalid),
            "{kind} as link"
        );
    }
    if kind != "bearer" {
        assert!(
            matches!(KEYS.verify(token), Err(TokenError::Invalid(_))),
            "{kind} accepted as a bearer token"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let kind = r.u8();
    let fp = r.u64();
    let (a, b) = (r.i64(), r.i64());
    let (at, by, how) = (r.u16(), r.u8(), r.u8());
    let text = r.rest_text();
    match kind % 5 {
        0 => {
            let at_pos = Position {
                sort_key: a,
                id: b,
                tiebreak: text.clone(),
            };
            let token = KEYS.sign_page(fp, &at_pos).expect("signs");
            assert_eq!(KEYS.verify_page(&token, fp), Ok(at_pos));
            assert_eq!(
                KEYS.verify_page(&token, fp ^ 1),
                Err(PageTokenError::OtherQuery)
            );
            if let Some(m) = mutate(&token, at, by, how) {
                assert_eq!(KEYS.verify_page(&m, fp), Err(PageTokenError::Forged), "{m}");
            }
            not_another_kind(&token, fp, "page");
        }
        1 => {
            let token = KEYS.sign_cursor(fp, &text).expect("signs");
            assert_eq!(KEYS.verify_cursor(&token, fp), Ok(text.clone()));
            assert_eq!(
                KEYS.verify_cursor(&token, !fp),
                Err(PageTokenError::OtherQuery)
            );
            if let Some(m) = mutate(&token, at, by, how) {
                assert_eq!(
                    KEYS.verify_cursor(&m, fp),
                    Err(PageTokenError::Forged),
                    "{m}"
                );
            }
            not_another_kind(&token, fp, "cursor");
        }
        2 => {
            let id = (by & 1 == 1).then_some(b);
            let ttl = Duration::from_secs(60 + u64::from(at));
            let (token, exp) = KEYS.sign_card_link(DomainId(a), b, ttl, id).expect("signs");
            let link = KEYS
                .verify_card_link(&token)
                .expect("a fresh link verifies");
            assert_eq!((link.domain, link.contact, link.id), (DomainId(a), b, id));
            assert!(link.issued_at <= exp);
            if let Some(m) = mutate(&token, at, by, how) {
                assert_eq!(
                    KEYS.verify_card_link(&m),
                    Err(CardLinkError::Invalid),
                    "{m}"
                );
            }
            not_another_kind(&token, fp, "card");
        }
        3 => {
            let permissions: Vec<Permission> = Permission::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| fp & (1 << i) != 0)
                .map(|(_, p)| p)
                .collect();
            let ttl = Duration::from_secs(60 + u64::from(at));
            let token = KEYS
                .mint(DomainId(a), UserId(b), &permissions, ttl)
                .expect("mints");
            match KEYS.verify(&token) {
                Ok(principal) => {
                    assert!(a > 0 && b > 0, "domain {a} user {b} accepted");
                    let caller = principal.known_caller().expect("a local token's caller");
                    assert_eq!((caller.domain_id, caller.user_id), (DomainId(a), UserId(b)));
                    assert_eq!(caller.permissions, permissions.iter().copied().collect());
                }
                Err(e) => {
                    assert!(a <= 0 || b <= 0, "domain {a} user {b} refused: {e}");
                    assert!(matches!(e, TokenError::Invalid(_)), "{e}");
                }
            }
            if let Some(m) = mutate(&token, at, by, how) {
                assert!(
                    matches!(KEYS.verify(&m), Err(TokenError::Invalid(_))),
                    "{m}"
                );
            }
            not_another_kind(&token, fp, "bearer");
        }
        _ => {
            // Outside text: as every kind of token, and as an `authorization` header.
            assert!(KEYS.verify_page(&text, fp).is_err());
            assert!(KEYS.verify_cursor(&text, fp).is_err());
            assert!(KEYS.verify_card_link(&text).is_err());
            assert!(KEYS.verify(&text).is_err());
            let header = now(VERIFIER.authenticate(Some(text.as_bytes())));
            let e = header.expect_err("an arbitrary header is refused");
            assert!(matches!(
                e.reason(),
                Reason::TokenMalformed | Reason::TokenInvalid | Reason::TokenExpired
            ));
        }
    }
});
