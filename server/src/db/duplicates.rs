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
//! whatever the slice cut. The kinds are read side by side, a slice of each in turn, until the
//! page is full or it read [`STEPS_PER_PAGE`] slices; the cursor holds each unfinished kind's
//! last value, so the next page starts right after. A page can therefore hold fewer groups than asked, even none, while
//! there are more: callers page until the token is empty. Every page costs at most
//! [`STEPS_PER_PAGE`] slices, whatever the domain's size.

use diesel::OptionalExtension as _;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::cached::Dynamic;
use crate::domain::ids::{DomainId, UserId};
use crate::domain::merge::NAME_SIMILARITY_THRESHOLD;
use crate::error::Error;

/// Index entries one step of a page reads at most (a twelfth with label or owner filters,
/// which cost a lookup per entry: [`FILTERED_SLICE_DIVISOR`]).
pub const SLICE: i64 = 10_000;
/// How much smaller a slice is with label or owner filters (a first filtered page at 1M
/// contacts then costs about what an unfiltered one does; BENCHMARKS.md).
pub const FILTERED_SLICE_DIVISOR: i64 = 12;
/// Most slices one page reads: a page costs at most this many slices' work.
pub const STEPS_PER_PAGE: usize = 4;
/// Most slices one page reads with label or owner filters (each entry costs lookups).
pub const FILTERED_STEPS_PER_PAGE: usize = 3;
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
struct BoundRow {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct GroupsRow {
    #[diesel(sql_type = BigInt)]
    candidates: i64,
    #[diesel(sql_type = Nullable<Text>)]
    last_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_value: Option<String>,
    #[diesel(sql_type = Jsonb)]
    groups: serde_json::Value,
}

fn members_sql(inner: &str) -> String {
    format!(
        "(SELECT (array_agg(x.contact_id ORDER BY x.contact_id))[1:{SHOWN_PER_GROUP}] AS members, \
                 count(*) AS n FROM ({inner}) x)"
    )
}

// (A phone lookup per messaging value is a scalar subquery with LIMIT: an EXISTS would be
// planned as a hash of every phone of the domain.)

/// How a kind's values are read: the table, the value (in index order), and the condition of
/// its (partial) index.
struct Source {
    table: &'static str,
    /// The ordering columns, as selected and as ordered by.
    order: &'static str,
    /// Extra condition of a partial index.
    only: &'static str,
}

fn source(kind: Kind) -> Source {
    match kind {
        Kind::Email => Source {
            table: "contact_emails",
            order: "t.normalized",
            only: "",
        },
        Kind::Phone => Source {
            table: "contact_phones",
            order: "t.e164",
            only: "",
        },
        Kind::Messaging => Source {
            table: "contact_messaging_channels",
            order: "phone_shaped_identity(t.external_user_id)",
            only: " AND phone_shaped_identity(t.external_user_id) IS NOT NULL",
        },
        Kind::Name => Source {
            table: "contact_attributes",
            order: "t.key, t.value",
            only: "",
        },
    }
}

/// `cmp` between the position columns of `kind` and `at` (`>`: after, `<=`: up to).
fn position(sql: &mut Dynamic, kind: Kind, cmp: &str, at: &Cursor) -> String {
    let src = source(kind);
    if kind == Kind::Name {
        let k = sql.text(at.key.clone());
        let v = sql.text(at.value.clone());
        format!(" AND (t.key, t.value) {cmp} ({k}, {v})")
    } else {
        let k = sql.text(at.key.clone());
        format!(" AND {} {cmp} {k}", src.order)
    }
}

/// The last entry of the slice of `kind` after `after` (none when the kind ends within it).
/// A slice counts index entries whatever the filters (which apply when its values are grouped),
/// so a filter that keeps few contacts cannot make a slice read the whole index.
fn bound_statement(
    domain: DomainId,
    kind: Kind,
    filters: &Filters,
    after: Option<&Cursor>,
) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let src = source(kind);
    let from = after.map_or(String::new(), |c| position(&mut sql, kind, ">", c));
    let select = if kind == Kind::Name {
        "t.key, t.value".to_owned()
    } else {
        format!("{}::text AS key, NULL::text AS value", src.order)
    };
    sql.text = format!(
        "SELECT {select} FROM {} t WHERE t.domain_id = {d}{}{from} \
         ORDER BY {} OFFSET {} LIMIT 1",
        src.table,
        src.only,
        src.order,
        slice_of(kind, filters) - 1
    );
    sql
}

/// The groups of `kind` after `after` and up to `upto` (the slice's last entry; none: to the
/// end): the first `limit` values seen more than once (or at `upto`, which may go on past the
/// slice), each counted whole by a lookup of its own.
fn groups_statement(
    domain: DomainId,
    kind: Kind,
    filters: &Filters,
    after: Option<&Cursor>,
    upto: Option<&Cursor>,
    limit: i64,
) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let src = source(kind);
    let from = after.map_or(String::new(), |c| position(&mut sql, kind, ">", c));
    // A row comparison bounds a btree scan only on its first column: a names slice ends with
    // `key = k AND value <= v` when it stays within one attribute key (as it nearly always
    // does), else with the slice's own limit.
    let (to, limited) = match (kind, after, upto) {
        (Kind::Name, Some(a), Some(u)) if a.key == u.key => {
            let k = sql.text(u.key.clone());
            let v = sql.text(u.value.clone());
            (format!(" AND t.key = {k} AND t.value <= {v}"), false)
        }
        (Kind::Name, _, Some(_)) => (String::new(), true),
        (_, _, Some(u)) => (position(&mut sql, kind, "<=", u), false),
        (_, _, None) => (String::new(), false),
    };
    let f1 = filters.sql(&mut sql, &d, "t.contact_id");
    let at_end = upto.map_or("false".to_owned(), |c| {
        if kind == Kind::Name {
            let k = sql.text(c.key.clone());
            let v = sql.text(c.value.clone());
            format!("(t.key, t.value) = ({k}, {v})")
        } else if kind == Kind::Messaging {
            format!("g.key = {}", sql.text(c.key.clone()))
        } else {
            format!("{} = {}", src.order, sql.text(c.key.clone()))
        }
    });
    let lim = sql.int(limit);
    let (table, order, only) = (src.table, src.order, src.only);
    let range = if limited {
        format!(
            "FROM (SELECT t.* FROM {table} t WHERE t.domain_id = {d}{only}{from} \
                   ORDER BY {order} LIMIT {}) t WHERE true{f1}",
            slice_of(kind, filters)
        )
    } else {
        format!("FROM {table} t WHERE t.domain_id = {d}{only}{from}{to}{f1}")
    };
    let result = "SELECT (SELECT count(*) FROM cand) AS candidates, \
                  (SELECT key FROM cand ORDER BY key DESC, value DESC LIMIT 1) AS last_key, \
                  (SELECT value FROM cand ORDER BY key DESC, value DESC LIMIT 1) AS last_value, \
                  COALESCE((SELECT jsonb_agg(to_jsonb(g) ORDER BY g.key, g.value) FROM groups g), \
                           '[]') AS groups";
    match kind {
        Kind::Email | Kind::Phone => {
            let col = order.trim_start_matches("t.");
            let f2 = filters.sql(&mut sql, &d, "t2.contact_id");
            let members = members_sql(&format!(
                "SELECT t2.contact_id FROM {table} t2 WHERE t2.domain_id = {d} \
                   AND t2.{col} = cand.key{f2} ORDER BY t2.contact_id LIMIT {COUNTED_PER_GROUP}"
            ));
            sql.text = format!(
                "WITH cand AS (SELECT {order} AS key, NULL::text AS value {range} \
                               GROUP BY {order} HAVING count(*) > 1 OR {at_end} \
                               ORDER BY {order} LIMIT {lim}), \
                      groups AS (SELECT cand.key, cand.value, m.members, m.n \
                                 FROM cand CROSS JOIN LATERAL {members} m WHERE m.n > 1) \
                 {result}"
            );
        }
        Kind::Messaging => {
            let f2 = filters.sql(&mut sql, &d, "m2.contact_id");
            let f3 = filters.sql(&mut sql, &d, "p2.contact_id");
            sql.text = format!(
                "WITH cand AS (SELECT g.key, NULL::text AS value \
                               FROM (SELECT {order} AS key, count(*) AS n {range} \
                                     GROUP BY {order}) g \
                               WHERE g.n > 1 OR {at_end} \
                                  OR (SELECT 1 FROM contact_phones p \
                                      WHERE p.domain_id = {d} AND p.e164 = g.key LIMIT 1) = 1 \
                               ORDER BY g.key LIMIT {lim}), \
                      groups AS ( \
                        SELECT cand.key, cand.value, m.members, m.n \
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
            let f2 = filters.sql(&mut sql, &d, "a2.contact_id");
            let threshold = NAME_SIMILARITY_THRESHOLD;
            let member = |alias: &str, filter: &str| {
                format!(
                    "SELECT {alias}.contact_id AS id, \
                            (SELECT c.name_search FROM contacts c WHERE c.id = {alias}.contact_id) \
                              AS name \
                     FROM contact_attributes {alias} \
                     WHERE {alias}.domain_id = {d} AND {alias}.key = cand.key \
                       AND {alias}.value = cand.value{filter} LIMIT {MAX_ATTRIBUTE_GROUP}"
                )
            };
            let (m1, m2) = (member("a2", &f2), member("a4", ""));
            sql.text = format!(
                "WITH cand AS (SELECT t.key, t.value {range} GROUP BY t.key, t.value \
                               HAVING count(*) BETWEEN 2 AND {MAX_ATTRIBUTE_GROUP} OR {at_end} \
                               ORDER BY t.key, t.value LIMIT {lim}), \
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
                                FROM ({m1}) m1 JOIN LATERAL ({m2}) m2 ON m2.id <> m1.id \
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
    SLICE
        / kind.slice_divisor()
        / if filters.is_empty() {
            1
        } else {
            FILTERED_SLICE_DIVISOR
        }
}

/// Where the next page starts: the position of every kind not finished yet, in kind order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagePosition {
    /// One position per kind still to read.
    pub kinds: Vec<Cursor>,
}

impl PagePosition {
    /// The start: every kind from its first value.
    pub fn start() -> Self {
        Self {
            kinds: Kind::ALL
                .into_iter()
                .map(|kind| Cursor {
                    kind,
                    key: String::new(),
                    value: String::new(),
                })
                .collect(),
        }
    }
}

/// What one step found, and where its kind goes on.
enum Step {
    /// The kind goes on from here.
    At(Cursor),
    /// The kind is done.
    Done,
}

/// One page: up to `limit` groups from `after`, and where the next page starts (`None`: every
/// contact was compared). The kinds are read side by side, a slice of each in turn (so a kind
/// with a million distinct values does not hold the others back for dozens of pages), and a
/// page reads at most [`STEPS_PER_PAGE`] slices.
pub async fn find(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    filters: &Filters,
    after: PagePosition,
    limit: usize,
) -> Result<(Vec<Group>, Option<PagePosition>), Error> {
    if !filters.labels.is_empty() && !labels_exist(conn, domain, &filters.labels).await? {
        // A label nobody carries: no contact passes the filter.
        return Ok((Vec::new(), None));
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut pending = after.kinds;
    let mut steps = 0;
    let most = if filters.is_empty() {
        STEPS_PER_PAGE
    } else {
        FILTERED_STEPS_PER_PAGE
    };
    while !pending.is_empty() {
        let mut i = 0;
        while i < pending.len() {
            if steps == most {
                return Ok((groups, Some(PagePosition { kinds: pending })));
            }
            steps += 1;
            let at = pending[i].clone();
            let (step, full) = step(conn, domain, filters, &at, limit, &mut groups).await?;
            match step {
                Step::At(next) => {
                    pending[i] = next;
                    i += 1;
                }
                Step::Done => {
                    pending.remove(i);
                }
            }
            if full {
                return Ok((
                    groups,
                    (!pending.is_empty()).then_some(PagePosition { kinds: pending }),
                ));
            }
        }
    }
    Ok((groups, None))
}

/// True when every one of `labels` exists in `domain`.
async fn labels_exist(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    labels: &[String],
) -> Result<bool, Error> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let found: Count = diesel::sql_query(
        "SELECT count(DISTINCT name) AS n FROM labels WHERE domain_id = $1 AND name = ANY($2)",
    )
    .bind::<BigInt, _>(domain.0)
    .bind::<diesel::sql_types::Array<Text>, _>(labels)
    .get_result(conn)
    .await?;
    Ok(found.n == labels.len() as i64)
}

/// One slice of `at`'s kind: adds its groups to `groups` (up to `limit` in all) and says where
/// the kind goes on, and whether the page is full.
async fn step(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    filters: &Filters,
    at: &Cursor,
    limit: usize,
    groups: &mut Vec<Group>,
) -> Result<(Step, bool), Error> {
    let kind = at.kind;
    let from = (!at.key.is_empty()).then_some(at);
    let upto: Option<Cursor> = bound_statement(domain, kind, filters, from)
        .get_result::<BoundRow>(conn)
        .await
        .optional()?
        .map(|b| Cursor {
            kind,
            key: b.key,
            value: b.value.unwrap_or_default(),
        });
    let want = (limit - groups.len()) as i64 + 1;
    let row: GroupsRow = groups_statement(domain, kind, filters, from, upto.as_ref(), want)
        .get_result(conn)
        .await?;
    let found: Vec<GroupJson> = serde_json::from_value(row.groups)
        .map_err(|e| Error::Internal(format!("duplicate groups unreadable: {e}")))?;
    for g in found {
        if groups.len() == limit {
            // Full: this kind goes on after the last group listed.
            let last = groups.last().map_or_else(|| at.clone(), Group::cursor);
            return Ok((Step::At(last), true));
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
    let next = if row.candidates >= want {
        // Stopped at the candidates' limit: go on after the last one looked at.
        Step::At(Cursor {
            kind,
            key: row.last_key.unwrap_or_default(),
            value: row.last_value.unwrap_or_default(),
        })
    } else if let Some(upto) = upto {
        // The slice ended before the kind did: go on after it.
        Step::At(upto)
    } else {
        Step::Done
    };
    Ok((next, groups.len() == limit))
}

/// A statement's arguments as (SQL type, value).
pub type Args = Vec<(&'static str, String)>;

/// The statements a step runs in each of `ranges` (a kind, a cursor and the slice's last
/// entry): the slice's bound, then its groups; and the first step of each kind. With their
/// arguments, for EXPLAIN in tests.
pub fn explainable(
    domain: DomainId,
    filters: &Filters,
    limit: i64,
    ranges: &[(Cursor, Cursor)],
) -> Vec<(Kind, String, Args)> {
    let mut out = Vec::new();
    for (from, to) in ranges {
        for sql in [
            bound_statement(domain, from.kind, filters, Some(from)),
            groups_statement(domain, from.kind, filters, Some(from), Some(to), limit + 1),
            bound_statement(domain, from.kind, filters, None),
        ] {
            let args = sql.args();
            out.push((from.kind, sql.text, args));
        }
    }
    out
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
