//! Identification queries: each is one index lookup (see the EXPLAIN test), kept as SQL text so
//! the benchmark harness can replay the very same statements with pgbench.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cached::Dynamic;
use crate::domain::contact::ChannelIdentity;
use crate::domain::identify::{
    self, Hit, Identification, IdentificationKey, KeyValue, LinkKind, MatchRule,
};
use crate::domain::ids::DomainId;
use crate::domain::interaction::Destination;
use crate::domain::phone::parse_caller_number;
use crate::domain::session::DomainSettings;
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

/// Routing's key: the contact with this id.
pub const CONTACT_KEY_SQL: &str = "\
SELECT c.id AS contact_id, 0::bigint AS link_id, ''::text AS matched, c.last_active_at \
FROM contacts c WHERE c.domain_id = $1 AND c.id = $2";

/// Routing's key: contacts with this attribute value (at most 1,000 read).
pub const ATTRIBUTE_KEY_SQL: &str = "\
SELECT a.contact_id, 0::bigint AS link_id, a.key AS matched, \
       (SELECT last_active_at FROM contacts WHERE id = a.contact_id) AS last_active_at \
FROM (SELECT contact_id, key FROM contact_attributes \
      WHERE domain_id = $1 AND key = $2 AND value = $3 LIMIT 1000) a";

/// Routing's key: contacts with this e-mail address, lower-cased (at most 1,000 read).
pub const EMAIL_KEY_SQL: &str = "\
SELECT e.contact_id, e.id AS link_id, e.normalized AS matched, \
       (SELECT last_active_at FROM contacts WHERE id = e.contact_id) AS last_active_at \
FROM (SELECT contact_id, id, normalized FROM contact_emails \
      WHERE domain_id = $1 AND normalized = $2 LIMIT 1000) e";

crate::db::cached::cached_statement!(
    /// [`CONTACT_KEY_SQL`], prepared once per connection.
    ContactKey = CONTACT_KEY_SQL;
    domain: BigInt => i64,
    contact: BigInt => i64,
);

crate::db::cached::cached_statement!(
    /// [`ATTRIBUTE_KEY_SQL`], prepared once per connection.
    AttributeKey = ATTRIBUTE_KEY_SQL;
    domain: BigInt => i64,
    key: Text => String,
    value: Text => String,
);

crate::db::cached::cached_statement!(
    /// [`EMAIL_KEY_SQL`], prepared once per connection.
    EmailKey = EMAIL_KEY_SQL;
    domain: BigInt => i64,
    normalized: Text => String,
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
            key: (kind == LinkKind::Attribute).then(|| r.matched.clone()),
            last_active_at: r.last_active_at,
        })
        .collect()
}

/// The exact number (and its national variants), then fallback 1 (the same national number)
/// when nothing matched, in one statement. Every predicate in it is an equality, so
/// PostgreSQL's generic plan costs what a custom one does and is kept after the fifth
/// execution on a connection. The suffix fallback is not in it: a range with bounds the planner
/// does not know is estimated at 0.5 % of the table, which priced the generic plan of the three
/// tiers together 200 times higher than a custom one, so the statement was planned anew at
/// every call (about 1 ms of PostgreSQL time per identification on this project's machine).
pub const PHONE_TIERS_SQL: &str = "\
WITH exact AS MATERIALIZED (SELECT 1 AS tier, t.* FROM ({exact}) t), \
     national AS (SELECT 2 AS tier, t.* FROM ({national}) t \
                  WHERE NOT EXISTS (SELECT 1 FROM exact)) \
SELECT * FROM exact UNION ALL SELECT * FROM national";

/// [`PHONE_TIERS_SQL`] with its binds: the exact keys (not empty) and the national number.
pub fn phone_tiers_statement(domain: DomainId, keys: &[String], national: &str) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0); // $1
    let list = sql.list(keys, |s, k| s.text(k));
    let exact = PHONE_EXACT_SQL
        .replace("$1", &d)
        .replacen("{keys}", &list, 1);
    let n = sql.text(national);
    let national = PHONE_NATIONAL_SQL.replace("$2", &n).replace("$1", &d);
    sql.text = PHONE_TIERS_SQL
        .replace("{exact}", &exact)
        .replace("{national}", &national);
    sql
}

/// Fallback 2, [`PHONE_SUFFIX_SQL`], as tier 3, for a domain with a fallback length when the
/// other tiers found nothing (a statement of its own: see [`PHONE_TIERS_SQL`]).
pub fn phone_suffix_statement(domain: DomainId, suffix: &str) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let from = sql.text(suffix);
    let to = sql.text(format!("{suffix}:"));
    let suffix_sql = PHONE_SUFFIX_SQL
        .replace("$3", &to)
        .replace("$2", &from)
        .replace("$1", &d);
    sql.text = format!("SELECT 3 AS tier, t.* FROM ({suffix_sql}) t");
    sql
}

#[derive(diesel::QueryableByName)]
struct TierRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    tier: i32,
    #[diesel(embed)]
    hit: HitRow,
}

/// Identifies the caller of a call: exact E.164 (and national variants), then the domain's
/// fallbacks in order (same national number, then the same last N digits): one statement
/// ([`PHONE_TIERS_SQL`]), and a second one for the last digits only when the first found
/// nothing and the domain has a fallback length. A withheld or unparseable number is NOT_FOUND
/// with that reason, never an error. Takes a shared connection, so it can be pipelined with
/// other reads.
pub async fn identify_call(
    mut conn: &AsyncPgConnection,
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
    let mut exact_keys: Vec<String> = keys.exact.iter().map(|(k, _)| k.clone()).collect();
    if exact_keys.is_empty() {
        // Matches nothing (no stored E.164 is empty): the statement needs one key.
        exact_keys.push(String::new());
    }
    let mut rows: Vec<TierRow> =
        phone_tiers_statement(domain.id, &exact_keys, &keys.national_number)
            .load(&mut conn)
            .await?;
    if rows.is_empty()
        && let Some(suffix) = keys.reversed_suffix.as_deref()
    {
        rows = phone_suffix_statement(domain.id, suffix)
            .load(&mut conn)
            .await?;
    }
    let Some(tier) = rows.iter().map(|r| r.tier).next() else {
        return Ok(Identification::not_found("no match", normalized));
    };
    let rows: Vec<HitRow> = rows.into_iter().map(|r| r.hit).collect();
    let (hits, note) = match tier {
        1 => {
            let rule_of = |m: &str| {
                keys.exact
                    .iter()
                    .find(|(k, _)| k == m)
                    .map_or(MatchRule::E164, |(_, r)| *r)
            };
            (
                hits(rows, LinkKind::Phone, rule_of),
                "exact number".to_owned(),
            )
        }
        2 => (
            hits(rows, LinkKind::Phone, |_| MatchRule::NationalNumber),
            "fallback, same national number".to_owned(),
        ),
        _ => (
            hits(rows, LinkKind::Phone, |_| MatchRule::LastDigits),
            format!(
                "fallback, same last {} digits",
                keys.reversed_suffix.as_deref().map_or(0, str::len)
            ),
        ),
    };
    Ok(identify::conclude(identify::rank(hits), &note, normalized))
}

/// Identifies the client of a chat by exact messaging identity; when nobody holds it and the
/// identity carries a phone number ([`identify::carried_number`]: WhatsApp, Viber, SMS), by
/// that number as a call would be (same formats, same rules), the reason saying so.
pub async fn identify_chat(
    mut conn: &AsyncPgConnection,
    domain: &DomainSettings,
    identity: &ChannelIdentity,
) -> Result<Identification, Error> {
    let rows: Vec<HitRow> = Channel {
        domain: domain.id.0,
        protocol: identity.protocol.clone(),
        external_user_id: identity.external_user_id.clone(),
    }
    .load(&mut conn)
    .await?;
    if rows.is_empty()
        && let Some(number) =
            identify::carried_number(&identity.protocol, &identity.external_user_id)
    {
        let by_number = Box::pin(identify_call(conn, domain, Some(&number))).await?;
        return Ok(Identification {
            reason: format!(
                "{} identity unknown, by the number it carries: {}",
                identity.protocol, by_number.reason
            ),
            ..by_number
        });
    }
    let hits = hits(rows, LinkKind::Messaging, |_| MatchRule::MessagingIdentity);
    Ok(identify::conclude(
        identify::rank(hits),
        "messaging identity",
        None,
    ))
}

/// The contacts routing's `key` names: one indexed lookup.
async fn identify_key(
    mut conn: &AsyncPgConnection,
    domain: &DomainSettings,
    key: &IdentificationKey,
) -> Result<Vec<Hit>, Error> {
    let d = domain.id.0;
    Ok(match &key.value {
        KeyValue::Contact(id) => {
            let rows: Vec<HitRow> = ContactKey {
                domain: d,
                contact: *id,
            }
            .load(&mut conn)
            .await?;
            hits(rows, LinkKind::Contact, |_| MatchRule::ContactId)
        }
        KeyValue::Attribute { key, value } => {
            let rows: Vec<HitRow> = AttributeKey {
                domain: d,
                key: key.clone(),
                value: value.clone(),
            }
            .load(&mut conn)
            .await?;
            hits(rows, LinkKind::Attribute, |_| MatchRule::Attribute)
        }
        KeyValue::Email(email) => {
            let rows: Vec<HitRow> = EmailKey {
                domain: d,
                normalized: email.normalized.clone(),
            }
            .load(&mut conn)
            .await?;
            hits(rows, LinkKind::Email, |_| MatchRule::Email)
        }
    })
}

/// Identifies the client of an offer: routing's keys in order, then the number (a call) or
/// the chat identity ([`identify::with_keys`]). The lookups of the keys and of the number are
/// sent together on the shared connection (pipelined): keys cost no extra round trip.
pub async fn identify(
    conn: &AsyncPgConnection,
    domain: &DomainSettings,
    destination: &Destination,
    keys: &[IdentificationKey],
) -> Result<Identification, Error> {
    let by_destination = async {
        match destination {
            Destination::Call { number } => identify_call(conn, domain, number.as_deref()).await,
            Destination::Chat(identity) => identify_chat(conn, domain, identity).await,
        }
    };
    if keys.is_empty() {
        return by_destination.await;
    }
    let by_keys =
        futures_util::future::try_join_all(keys.iter().map(|k| identify_key(conn, domain, k)));
    let (fallback, found) = tokio::try_join!(by_destination, by_keys)?;
    Ok(identify::with_keys(keys, found, fallback))
}
