//! SearchContacts' query: its text forms (name, destination, attribute `key`/`value` with `*`
//! for any, messaging identity, labels), validated as its handler does, then the destination
//! read in the domain's region as the application layer reads it (`classify_destination`),
//! and the name-matching helpers the statements rely on.
//!
//! Input: a region (as for `phone`), one byte of flags, then the fields' text separated by
//! `\n`.
//! Properties: nothing panics; a refusal is INVALID_ARGUMENT naming its fields; the query a
//! page token is bound to does not depend on the page (size, token) and does on the
//! conditions; a destination is a phone whose E.164 form reads back as the same phone, or a
//! run of at least 3 digits, or a trimmed lower-case e-mail prefix, or a precise refusal;
//! LIKE escaping is undone by reading it back; a word's match to itself is exact.
#![no_main]

use client_info_fuzz::{assert_precise, region_and_rest};
use client_info_proto::pb;
use client_info_server::domain::search::{
    DestinationQuery, MIN_DIGIT_RUN, WordMatch, classify_destination, display_words, escape_like,
    one_word, typo_tolerant,
};
use client_info_server::error::Error;
use client_info_server::grpc::decode::search::search_contacts;
use libfuzzer_sys::fuzz_target;

/// `escaped` with its LIKE escapes removed.
fn unescape_like(escaped: &str) -> String {
    let mut out = String::new();
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let next = chars
                .next()
                .expect("an escape is followed by what it escapes");
            assert!(matches!(next, '%' | '_' | '\\'), "escaped {next:?}");
            out.push(next);
        } else {
            assert!(!matches!(c, '%' | '_'), "{c:?} left unescaped");
            out.push(c);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (region, rest) = region_and_rest(data);
    let Some((&flags, rest)) = rest.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut fields = text.split('\n');
    let mut next = || fields.next().unwrap_or_default().to_owned();
    let (name, destination) = (next(), next());
    let mut req = pb::SearchContactsRequest {
        name,
        destination,
        combine: i32::from(flags >> 6),
        ..Default::default()
    };
    if flags & 1 != 0 {
        req.attributes.push(pb::AttributeCondition {
            key: next(),
            value: next(),
        });
    }
    if flags & 2 != 0 {
        req.messaging = Some(pb::MessagingIdentity {
            protocol: next(),
            external_user_id: next(),
        });
    }
    if flags & 4 != 0 {
        req.labels.push(next());
    }
    let word = next();

    match search_contacts(&req) {
        Ok(search) => {
            let mut paged = req.clone();
            paged.page_size = 7;
            paged.page_token = "next".into();
            let paged = search_contacts(&paged).expect("paging changes no condition");
            assert_eq!(paged.query, search.query, "the query depends on its page");
            let mut other = req.clone();
            other.name.push('x');
            if let Ok(other) = search_contacts(&other) {
                assert_ne!(
                    other.query, search.query,
                    "another query, the same fingerprint"
                );
            }
            if let Some(d) = &search.destination {
                match classify_destination(d, region) {
                    Ok(DestinationQuery::Phone { e164 }) => {
                        assert_eq!(
                            classify_destination(&e164, region),
                            Ok(DestinationQuery::Phone { e164: e164.clone() }),
                            "{d:?}"
                        );
                    }
                    Ok(DestinationQuery::Digits(digits)) => {
                        assert!(digits.len() >= MIN_DIGIT_RUN, "{d:?}");
                        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{d:?}");
                    }
                    Ok(DestinationQuery::Email(e)) => {
                        assert_eq!(e, d.trim().to_lowercase(), "{d:?}");
                    }
                    Err(e) => assert_precise("destination", Error::invalid("destination", e)),
                }
            }
        }
        Err(v) => assert_precise("SearchContacts", v.into()),
    }

    assert_eq!(unescape_like(&escape_like(&word)), word);
    let _ = (typo_tolerant(&word), one_word(&word));
    for w in display_words(&word) {
        assert!(!w.is_empty());
        let lower = w.to_lowercase();
        assert_eq!(WordMatch::of(&lower, &lower), Some(WordMatch::Exact));
        if let Some(m) = WordMatch::of(&word.to_lowercase(), &lower) {
            assert_eq!(WordMatch::from_rank(m.rank()), Some(m));
        }
    }
});
