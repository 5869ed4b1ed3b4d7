//! FindDuplicates: contacts of a domain that share a value, found kind by kind (e-mails,
//! messaging identities that are another contact's phone number, phones, then near-identical
//! names that share an attribute value), each kind in the order of its value.
//!
//! # Bounded pages
//!
//! Finding every shared value means reading every value once; on a domain of a million
//! contacts that is too much for one call. So each step of a page reads at most a *slice*
//! of one kind's index in value order ([`SLICE`] entries, fewer with filters), keeps the
//! values seen twice in it (and the slice's last value, which may go on past it), and counts
//! each such value's contacts with one index lookup of its own: a group is always complete,
//! whatever the slice cut. A page goes on, slice after slice and kind after kind, until it is
//! full or it read [`STEPS_PER_PAGE`] slices; the cursor is (kind, last value), so the next page
//! starts right after. A page can therefore hold fewer groups than asked, even none, while
//! there are more: callers page until the token is empty. Every page costs at most
//! [`STEPS_PER_PAGE`] slices, whatever the domain's size.

use diesel::sql_types::{BigInt, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::cached::Dynamic;
use crate::domain::ids::{DomainId, UserId};
use crate::domain::merge::NAME_SIMILARITY_THRESHOLD;
use crate::error::Error;

/// Index entries one step of a page reads at most (a quarter with label or owner filters,
/// which cost a lookup per entry).
pub const SLICE: i64 = 20_000;
/// Most slices one page reads: a page costs at most this many slices' work.
pub const STEPS_PER_PAGE: usize = 5;
/// Contacts listed per group (the count says how many share the value).
pub const SHOWN_PER_GROUP: usize = 10;
/// Most contacts counted per group.
pub const COUNTED_PER_GROUP: i64 = 1000;
/// Attribute values shared by more contacts than this are not compared by name (a common
/// value such as `tier=gold` says nothing about who is who).
pub const MAX_ATTRIBUTE_GROUP: i64 = 20;

/// The kinds of likeness, in the order a search goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// The same normalised e-mail.
    Email,
    /// A messaging identity whose user id is a phone number another contact has (or that
    /// two identities share across protocols).
    Messaging,
    /// The same phone (E.164).
    Phone,
    /// Near-identical names that share an attribute value.
    Name,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Email, Kind::Messaging, Kind::Phone, Kind::Name];

    fn slice_divisor(self) -> i64 {
        match self {
            // An EXISTS or a name comparison per entry.
            Kind::Messaging | Kind::Name => 4,
            Kind::Email | Kind::Phone => 1,
        }
    }
}

/// Where the next page starts: a kind, and the last value read in it (an attribute's value
/// as well for names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The kind.
    pub kind: Kind,
    /// The last value (the attribute key for names).
    pub key: String,
    /// The attribute value (names only).
    #[serde(default)]
    pub value: String,
}

/// The filters of a search.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Every one of these labels.
    pub labels: Vec<String>,
    /// Owned by this user.
    pub owner: Option<UserId>,
}

impl Filters {
    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.owner.is_none()
    }

    /// SQL conditions on the contact id `col`: scalar subqueries on primary keys, which the
    /// planner keeps as lookups per entry of the slice (an EXISTS would become a join that
    /// reads a whole label's contacts and sorts them).
    fn sql(&self, sql: &mut Dynamic, d: &str, col: &str) -> String {
        let mut out = String::new();
        if let Some(owner) = self.owner {
            let o = sql.int(owner.0);
            out.push_str(&format!(
                " AND (SELECT c.owner_id FROM contacts c WHERE c.id = {col}) = {o}"
            ));
        }
        for label in &self.labels {
            let l = sql.text(label.clone());
            out.push_str(&format!(
                " AND (SELECT count(*) FROM contact_labels cl WHERE cl.contact_id = {col} \
                   AND cl.label_id = (SELECT l.id FROM labels l WHERE l.domain_id = {d} \
                                      AND l.name = {l})) = 1"
            ));
        }
        out
    }
}

/// One group found.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Its kind.
    pub kind: Kind,
    /// The shared value (E.164, e-mail), or the attribute key (names).
    pub key: String,
    /// The attribute value (names).
    pub attribute_value: Option<String>,
    /// The first contacts, lowest id first.
    pub members: Vec<i64>,
    /// How many share it (up to [`COUNTED_PER_GROUP`]).
    pub count: i64,
    /// Names: the least similarity of a listed contact's name to another's.
    pub least_similarity: Option<f64>,
}

impl Group {
    fn cursor(&self) -> Cursor {
        Cursor {
            kind: self.kind,
            key: self.key.clone(),
            value: self.attribute_value.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct GroupJson {
    key: String,
    #[serde(default)]
    value: Option<String>,
    members: Vec<i64>,
    n: i64,
    #[serde(default)]
    least: Option<f64>,
}

#[derive(diesel::QueryableByName)]
struct StepRow {
    #[diesel(sql_type = Nullable<Text>)]
    last_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_value: Option<String>,
    #[diesel(sql_type = BigInt)]
    scanned: i64,
    #[diesel(sql_type = Jsonb)]
    groups: serde_json::Value,
}

fn members_sql(inner: &str) -> String {
    format!(
        "(SELECT (array_agg(x.contact_id ORDER BY x.contact_id))[1:{SHOWN_PER_GROUP}] AS members, \
                 count(*) AS n FROM ({inner}) x)"
    )
}

/// The statement of one step: a slice of `kind` after `after`, at most `room` groups.
fn step_statement(
    domain: DomainId,
    kind: Kind,
    filters: &Filters,
    after: Option<&Cursor>,
    room: i64,
) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let slice = slice_of(kind, filters);
    let result = "SELECT (SELECT key FROM last) AS last_key, \
                  (SELECT value FROM last) AS last_value, \
                  (SELECT count(*) FROM slice) AS scanned, \
                  COALESCE((SELECT jsonb_agg(to_jsonb(g) ORDER BY g.key, g.value) FROM groups g), \
                           '[]') AS groups";
    match kind {
        Kind::Email | Kind::Phone => {
            let (table, col) = match kind {
                Kind::Email => ("contact_emails", "normalized"),
                _ => ("contact_phones", "e164"),
            };
            let from = after.map_or(String::new(), |c| {
                format!(" AND t.{col} > {}", sql.text(c.key.clone()))
            });
            let f1 = filters.sql(&mut sql, &d, "t.contact_id");
            let f2 = filters.sql(&mut sql, &d, "t2.contact_id");
            let room = sql.int(room);
            let members = members_sql(&format!(
                "SELECT t2.contact_id FROM {table} t2 WHERE t2.domain_id = {d} \
                   AND t2.{col} = cand.key{f2} ORDER BY t2.contact_id LIMIT {COUNTED_PER_GROUP}"
            ));
            sql.text = format!(
                "WITH slice AS (SELECT t.{col} AS key FROM {table} t \
                                WHERE t.domain_id = {d}{from}{f1} ORDER BY t.{col} LIMIT {slice}), \
                      last AS (SELECT key, NULL::text AS value FROM slice \
                               ORDER BY key DESC LIMIT 1), \
                      cand AS (SELECT s.key FROM slice s GROUP BY s.key \
                               HAVING count(*) > 1 OR s.key = (SELECT key FROM last) \
                               ORDER BY s.key LIMIT {room}), \
                      groups AS (SELECT cand.key::text AS key, NULL::text AS value, m.members, m.n \
                                 FROM cand CROSS JOIN LATERAL {members} m WHERE m.n > 1) \
                 {result}"
            );
        }
        Kind::Messaging => {
            let from = after.map_or(String::new(), |c| {
                format!(
                    " AND phone_shaped_identity(t.external_user_id) > {}",
                    sql.text(c.key.clone())
                )
            });
            let f1 = filters.sql(&mut sql, &d, "t.contact_id");
            let f2 = filters.sql(&mut sql, &d, "m2.contact_id");
            let f3 = filters.sql(&mut sql, &d, "p2.contact_id");
            let room = sql.int(room);
            sql.text = format!(
                "WITH slice AS (SELECT phone_shaped_identity(t.external_user_id) AS key \
                                FROM contact_messaging_channels t \
                                WHERE t.domain_id = {d} \
                                  AND phone_shaped_identity(t.external_user_id) IS NOT NULL{from}{f1} \
                                ORDER BY phone_shaped_identity(t.external_user_id) LIMIT {slice}), \
                      last AS (SELECT key, NULL::text AS value FROM slice \
                               ORDER BY key DESC LIMIT 1), \
                      cand AS (SELECT s.key FROM slice s GROUP BY s.key \
                               HAVING count(*) > 1 OR s.key = (SELECT key FROM last) \
                                   OR EXISTS (SELECT 1 FROM contact_phones p \
                                              WHERE p.domain_id = {d} AND p.e164 = s.key) \
                               ORDER BY s.key LIMIT {room}), \
                      groups AS ( \
                        SELECT cand.key::text AS key, NULL::text AS value, m.members, m.n \
                        FROM cand CROSS JOIN LATERAL ( \
                          SELECT (array_agg(u.contact_id ORDER BY u.contact_id))[1:{SHOWN_PER_GROUP}] \
                                   AS members, count(*) AS n, \
                                 bool_or(u.channel AND NOT u.phone) AS adds \
                          FROM (SELECT v.contact_id, bool_or(v.channel) AS channel, \
                                       bool_or(NOT v.channel) AS phone \
                                FROM (SELECT m2.contact_id, true AS channel \
                                      FROM contact_messaging_channels m2 \
                                      WHERE m2.domain_id = {d} \
                                        AND phone_shaped_identity(m2.external_user_id) = cand.key{f2} \
                                      UNION ALL \
                                      SELECT p2.contact_id, false FROM contact_phones p2 \
                                      WHERE p2.domain_id = {d} AND p2.e164 = cand.key{f3} \
                                      LIMIT {COUNTED_PER_GROUP}) v \
                                GROUP BY v.contact_id) u) m \
                        WHERE m.n > 1 AND m.adds) \
                 {result}"
            );
        }
        Kind::Name => {
            let from = after.map_or(String::new(), |c| {
                let k = sql.text(c.key.clone());
                let v = sql.text(c.value.clone());
                format!(" AND (t.key, t.value) > ({k}, {v})")
            });
            let f1 = filters.sql(&mut sql, &d, "t.contact_id");
            let f2 = filters.sql(&mut sql, &d, "a2.contact_id");
            let threshold = NAME_SIMILARITY_THRESHOLD;
            sql.text = format!(
                "WITH slice AS (SELECT t.key, t.value FROM contact_attributes t \
                                WHERE t.domain_id = {d}{from}{f1} \
                                ORDER BY t.key, t.value LIMIT {slice}), \
                      last AS (SELECT key, value FROM slice ORDER BY key DESC, value DESC LIMIT 1), \
                      cand AS (SELECT s.key, s.value FROM slice s GROUP BY s.key, s.value \
                               HAVING count(*) BETWEEN 2 AND {MAX_ATTRIBUTE_GROUP} \
                                   OR (s.key, s.value) = (SELECT key, value FROM last)), \
                      groups AS ( \
                        SELECT cand.key, cand.value, m.members, m.n, m.least \
                        FROM cand CROSS JOIN LATERAL ( \
                          SELECT (array_agg(p.id ORDER BY p.id))[1:{SHOWN_PER_GROUP}] AS members, \
                                 count(*) AS n, min(p.best)::float8 AS least, \
                                 (SELECT count(*) FROM ( \
                                    SELECT 1 FROM contact_attributes a3 \
                                    WHERE a3.domain_id = {d} AND a3.key = cand.key \
                                      AND a3.value = cand.value \
                                    LIMIT {MAX_ATTRIBUTE_GROUP} + 1) z) AS shared \
                          FROM (SELECT m1.id, max(similarity(m1.name, m2.name)) AS best \
                                FROM (SELECT a2.contact_id AS id, \
                                             (SELECT c.name_search FROM contacts c \
                                              WHERE c.id = a2.contact_id) AS name \
                                      FROM contact_attributes a2 \
                                      WHERE a2.domain_id = {d} AND a2.key = cand.key \
                                        AND a2.value = cand.value{f2} \
                                      LIMIT {MAX_ATTRIBUTE_GROUP}) m1 \
                                JOIN LATERAL (SELECT a4.contact_id AS id, \
                                                     (SELECT c.name_search FROM contacts c \
                                                      WHERE c.id = a4.contact_id) AS name \
                                              FROM contact_attributes a4 \
                                              WHERE a4.domain_id = {d} AND a4.key = cand.key \
                                                AND a4.value = cand.value \
                                              LIMIT {MAX_ATTRIBUTE_GROUP}) m2 ON m2.id <> m1.id \
                                GROUP BY m1.id \
                                HAVING max(similarity(m1.name, m2.name)) >= {threshold}) p) m \
                        WHERE m.n > 1 AND m.shared <= {MAX_ATTRIBUTE_GROUP}) \
                 {result}"
            );
        }
    }
    sql
}

fn slice_of(kind: Kind, filters: &Filters) -> i64 {
    SLICE / kind.slice_divisor() / if filters.is_empty() { 1 } else { 4 }
}

/// One page: up to `limit` groups after `after`, and where the next page starts (`None`: every
/// contact was compared). A page reads at most [`STEPS_PER_PAGE`] slices.
pub async fn find(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    filters: &Filters,
    after: Option<Cursor>,
    limit: usize,
) -> Result<(Vec<Group>, Option<Cursor>), Error> {
    let mut groups: Vec<Group> = Vec::new();
    let mut position = after.unwrap_or(Cursor {
        kind: Kind::Email,
        key: String::new(),
        value: String::new(),
    });
    for _ in 0..STEPS_PER_PAGE {
        let kind = position.kind;
        let from = (!position.key.is_empty()).then_some(&position);
        let room = limit.saturating_sub(groups.len());
        let row: StepRow = step_statement(domain, kind, filters, from, room as i64 + 1)
            .get_result(conn)
            .await?;
        let found: Vec<GroupJson> = serde_json::from_value(row.groups)
            .map_err(|e| Error::Internal(format!("duplicate groups unreadable: {e}")))?;
        for g in found {
            if groups.len() == limit {
                // Full: the next page continues after the last group listed.
                let next = groups.last().map(Group::cursor);
                return Ok((groups, next));
            }
            groups.push(Group {
                kind,
                key: g.key,
                attribute_value: g.value,
                members: g.members,
                count: g.n,
                least_similarity: g.least,
            });
        }
        position = if row.scanned >= slice_of(kind, filters) {
            // The slice ended before the kind did: go on after its last value.
            Cursor {
                kind,
                key: row.last_key.unwrap_or_default(),
                value: row.last_value.unwrap_or_default(),
            }
        } else {
            match next_kind(kind) {
                Some(next) => next,
                None => return Ok((groups, None)),
            }
        };
        if groups.len() == limit {
            return Ok((groups, Some(position)));
        }
    }
    Ok((groups, Some(position)))
}

fn next_kind(kind: Kind) -> Option<Cursor> {
    Kind::ALL.into_iter().find(|k| *k > kind).map(|k| Cursor {
        kind: k,
        key: String::new(),
        value: String::new(),
    })
}

/// The statements the first page runs (one per kind), with their arguments as (SQL type,
/// value), for EXPLAIN in tests.
pub fn explainable(
    domain: DomainId,
    filters: &Filters,
    limit: i64,
) -> Vec<(Kind, String, Vec<(&'static str, String)>)> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let sql = step_statement(domain, kind, filters, None, limit + 1);
            let args = sql.args();
            (kind, sql.text, args)
        })
        .collect()
}

/// The least similarity of each group's listed contacts' names to its first contact's, in
/// the order of `groups` (member lists as `{1,2}` literals).
pub async fn name_likeness(
    conn: &mut AsyncPgConnection,
    groups: &[Vec<i64>],
) -> Result<Vec<f64>, Error> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Double)]
        least: f64,
    }
    let lists: Vec<String> = groups
        .iter()
        .map(|g| {
            let ids: Vec<String> = g.iter().map(i64::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT COALESCE((SELECT min(similarity(f.name_search, c.name_search))::float8 \
                          FROM contacts f, contacts c \
                          WHERE f.id = (g.members::bigint[])[1] \
                            AND c.id = ANY (g.members::bigint[])), 0) AS least \
         FROM unnest($1::text[]) WITH ORDINALITY AS g (members, ord) ORDER BY g.ord",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(&lists)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.least).collect())
}
