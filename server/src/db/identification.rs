//! Identification queries: each is one index lookup (see the EXPLAIN test), kept as SQL text so
//! the benchmark harness can replay the very same statements with pgbench.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cached::Dynamic;
use super::domains::DomainSettings;
use crate::domain::contact::ChannelIdentity;
use crate::domain::identify::{self, Hit, Identification, LinkKind, MatchRule};
use crate::domain::ids::DomainId;
use crate::domain::phone::parse_caller_number;
use crate::error::Error;

// Each query reads the matching links through one index (bounded by an inner LIMIT), then each
// contact's activity by primary key in a scalar subquery, which the planner cannot turn into a
// hash join: the plan stays index lookups even as a generic prepared plan, whose row estimates
// know nothing of the arguments.

/// Phones whose E.164 is one of `{keys}` (the number and its national variants).
pub const PHONE_EXACT_SQL: &str = "\
SELECT p.contact_id, p.id AS link_id, p.e164 AS matched, \
       (SELECT last_active_at FROM contacts WHERE id = p.contact_id) AS last_active_at \
FROM (SELECT contact_id, id, e164 FROM contact_phones \
      WHERE domain_id = $1 AND e164 IN ({keys}) LIMIT 1000) p \
ORDER BY 4 DESC, 1 LIMIT 200";

/// [`PHONE_EXACT_SQL`] for `keys` (not empty), prepared once per connection and list length.
pub fn phone_exact_statement(domain: DomainId, keys: &[String]) -> Dynamic {
    let mut sql = Dynamic::default();
    sql.int(domain.0); // $1
    let list = sql.list(keys, |s, k| s.text(k));
    sql.text = PHONE_EXACT_SQL.replacen("{keys}", &list, 1);
    sql
}

/// Fallback 1: phones with the same national significant number.
pub const PHONE_NATIONAL_SQL: &str = "\
SELECT p.contact_id, p.id AS link_id, p.e164 AS matched, \
       (SELECT last_active_at FROM contacts WHERE id = p.contact_id) AS last_active_at \
FROM (SELECT contact_id, id, e164 FROM contact_phones \
      WHERE domain_id = $1 AND national_number = $2 LIMIT 1000) p \
ORDER BY 4 DESC, 1 LIMIT 200";

/// Fallback 2: phones ending with the same N digits (a range on the reversed digits).
pub const PHONE_SUFFIX_SQL: &str = "\
SELECT p.contact_id, p.id AS link_id, p.e164 AS matched, \
       (SELECT last_active_at FROM contacts WHERE id = p.contact_id) AS last_active_at \
FROM (SELECT contact_id, id, e164 FROM contact_phones \
      WHERE domain_id = $1 AND digits_reversed >= $2 AND digits_reversed < $3 LIMIT 1000) p \
ORDER BY 4 DESC, 1 LIMIT 200";

/// Chats: the contact holding the messaging identity (unique per domain).
pub const CHANNEL_SQL: &str = "\
SELECT m.contact_id, m.id AS link_id, m.protocol AS matched, \
       (SELECT last_active_at FROM contacts WHERE id = m.contact_id) AS last_active_at \
FROM (SELECT contact_id, id, protocol FROM contact_messaging_channels \
      WHERE domain_id = $1 AND protocol = $2 AND external_user_id = $3) m";

crate::db::cached::cached_statement!(
    /// [`PHONE_NATIONAL_SQL`], prepared once per connection.
    PhoneNational = PHONE_NATIONAL_SQL;
    domain: BigInt => i64,
    national: Text => String,
);
crate::db::cached::cached_statement!(
    /// [`PHONE_SUFFIX_SQL`], prepared once per connection.
    PhoneSuffix = PHONE_SUFFIX_SQL;
    domain: BigInt => i64,
    from: Text => String,
    to: Text => String,
);
crate::db::cached::cached_statement!(
    /// [`CHANNEL_SQL`], prepared once per connection.
    Channel = CHANNEL_SQL;
    domain: BigInt => i64,
    protocol: Text => String,
    external_user_id: Text => String,
);

#[derive(diesel::QueryableByName)]
struct HitRow {
    #[diesel(sql_type = BigInt)]
    contact_id: i64,
    #[diesel(sql_type = BigInt)]
    link_id: i64,
    #[diesel(sql_type = Text)]
    matched: String,
    #[diesel(sql_type = Timestamptz)]
    last_active_at: DateTime<Utc>,
}

fn hits(rows: Vec<HitRow>, kind: LinkKind, rule_of: impl Fn(&str) -> MatchRule) -> Vec<Hit> {
    rows.into_iter()
        .map(|r| Hit {
            contact_id: r.contact_id,
            link_id: r.link_id,
            kind,
            rule: rule_of(&r.matched),
            last_active_at: r.last_active_at,
        })
        .collect()
}

/// Identifies the caller of a call: exact E.164 (and national variants), then the domain's
/// fallbacks in order (same national number, then the same last N digits). A withheld or
/// unparseable number is NOT_FOUND with that reason, never an error.
pub async fn identify_call(
    conn: &mut AsyncPgConnection,
    domain: &DomainSettings,
    number: Option<&str>,
) -> Result<Identification, Error> {
    let Some(number) = number else {
        return Ok(Identification::not_found("hidden number", None));
    };
    let Ok(phone) = parse_caller_number(number, domain.default_region) else {
        return Ok(Identification::not_found("unparseable number", None));
    };
    let keys = identify::phone_keys(&phone, domain.fallback_digits);
    let normalized = Some(phone.e164.clone());
    let exact_keys: Vec<String> = keys.exact.iter().map(|(k, _)| k.clone()).collect();
    let rows: Vec<HitRow> = if exact_keys.is_empty() {
        Vec::new()
    } else {
        phone_exact_statement(domain.id, &exact_keys)
            .load(conn)
            .await?
    };
    if !rows.is_empty() {
        let rule_of = |m: &str| {
            keys.exact
                .iter()
                .find(|(k, _)| k == m)
                .map_or(MatchRule::E164, |(_, r)| *r)
        };
        let hits = hits(rows, LinkKind::Phone, rule_of);
        return Ok(identify::conclude(
            identify::rank(hits),
            "exact number",
            normalized,
        ));
    }
    let rows: Vec<HitRow> = PhoneNational {
        domain: domain.id.0,
        national: keys.national_number.clone(),
    }
    .load(conn)
    .await?;
    if !rows.is_empty() {
        let hits = hits(rows, LinkKind::Phone, |_| MatchRule::NationalNumber);
        return Ok(identify::conclude(
            identify::rank(hits),
            "fallback, same national number",
            normalized,
        ));
    }
    if let Some(suffix) = &keys.reversed_suffix {
        let rows: Vec<HitRow> = PhoneSuffix {
            domain: domain.id.0,
            from: suffix.clone(),
            to: format!("{suffix}:"),
        }
        .load(conn)
        .await?;
        if !rows.is_empty() {
            let hits = hits(rows, LinkKind::Phone, |_| MatchRule::LastDigits);
            let note = format!("fallback, same last {} digits", suffix.len());
            return Ok(identify::conclude(identify::rank(hits), &note, normalized));
        }
    }
    Ok(Identification::not_found("no match", normalized))
}

/// Identifies the client of a chat by exact messaging identity.
pub async fn identify_chat(
    conn: &mut AsyncPgConnection,
    domain: &DomainSettings,
    identity: &ChannelIdentity,
) -> Result<Identification, Error> {
    let rows: Vec<HitRow> = Channel {
        domain: domain.id.0,
        protocol: identity.protocol.clone(),
        external_user_id: identity.external_user_id.clone(),
    }
    .load(conn)
    .await?;
    let hits = hits(rows, LinkKind::Messaging, |_| MatchRule::MessagingIdentity);
    Ok(identify::conclude(
        identify::rank(hits),
        "messaging identity",
        None,
    ))
}
