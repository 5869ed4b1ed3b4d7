//! Contact search as one SQL statement: each condition is an index-backed branch of a UNION ALL
//! that yields (contact, condition, sort key, reason); the branches are grouped per contact,
//! combined with AND (every condition) or OR (any), filtered by labels and owner, and paged by
//! keyset on (sort key, id). The filters are scalar subqueries on primary keys, which the planner
//! keeps as per-hit index lookups instead of hashing a whole label's or owner's contacts.

use diesel::sql_types::{BigInt, Jsonb, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cached::Dynamic;
use crate::domain::ids::DomainId;
use crate::domain::search::{Condition, DestinationQuery, SearchQuery, escape_like, typo_tolerant};
use crate::error::Error;

/// One hit of a page.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct SearchRow {
    /// The contact.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its sort key (lower is better).
    #[diesel(sql_type = BigInt)]
    pub sort_key: i64,
    /// Why it matched: `[{"f": field, "e": exact, "v": value}, ...]`.
    #[diesel(sql_type = Jsonb)]
    pub found_by: serde_json::Value,
}

/// The branch of one condition: `SELECT contact, cond, sort key, field, exact, value`.
fn branch(sql: &mut Dynamic, domain: &str, cond: usize, condition: &Condition) -> String {
    match condition {
        Condition::Name(q) => {
            let raw = sql.text(q.clone());
            let escaped = sql.text(escape_like(q));
            let norm = format!("lower(immutable_unaccent({raw}))");
            let pattern = format!("lower(immutable_unaccent({escaped}))");
            let fuzzy = if typo_tolerant(q) {
                format!("OR {norm} <% name_search")
            } else {
                String::new()
            };
            format!(
                "SELECT id, {cond}, \
                   (CASE WHEN name_search = {norm} THEN 0 \
                         WHEN name_search LIKE {pattern} || '%' ESCAPE '\\' THEN 1000 \
                         WHEN name_search LIKE '%' || {pattern} || '%' ESCAPE '\\' THEN 2000 \
                         ELSE 3000 END \
                    + 999 - floor(word_similarity({norm}, name_search) * 999))::bigint, \
                   'name', name_search = {norm}, display_name \
                 FROM contacts WHERE domain_id = {domain} \
                   AND (name_search LIKE '%' || {pattern} || '%' ESCAPE '\\' {fuzzy})"
            )
        }
        Condition::Destination(DestinationQuery::Phone { e164 }) => {
            let e = sql.text(e164.clone());
            format!(
                "SELECT contact_id, {cond}, 0::bigint, 'phone', true, e164 \
                 FROM contact_phones WHERE domain_id = {domain} AND e164 = {e}"
            )
        }
        Condition::Destination(DestinationQuery::Digits(digits)) => {
            let d = sql.text(digits.clone());
            format!(
                "SELECT contact_id, {cond}, 1000::bigint, 'phone', false, e164 \
                 FROM contact_phones WHERE domain_id = {domain} AND e164 LIKE '%' || {d} || '%'"
            )
        }
        Condition::Destination(DestinationQuery::Email(prefix)) => {
            let p = sql.text(prefix.clone());
            let upper = sql.text(format!("{prefix}\u{10FFFF}"));
            format!(
                "SELECT contact_id, {cond}, CASE WHEN normalized = {p} THEN 0 ELSE 1000 END::bigint, \
                   'email', normalized = {p}, normalized \
                 FROM contact_emails WHERE domain_id = {domain} \
                   AND normalized >= {p} AND normalized < {upper}"
            )
        }
        Condition::Attribute {
            key,
            value: Some(value),
        } => {
            let k = sql.text(key.clone());
            let v = sql.text(value.clone());
            format!(
                "SELECT contact_id, {cond}, 0::bigint, 'attribute', true, key || '=' || value \
                 FROM contact_attributes WHERE domain_id = {domain} AND key = {k} AND value = {v}"
            )
        }
        Condition::Attribute { key, value: None } => {
            let k = sql.text(key.clone());
            format!(
                "SELECT contact_id, {cond}, 0::bigint, 'attribute', true, key || '=' || value \
                 FROM contact_attributes WHERE domain_id = {domain} AND key = {k}"
            )
        }
        Condition::Messaging {
            protocol,
            external_user_id,
        } => {
            let p = sql.text(protocol.clone());
            let x = sql.text(external_user_id.clone());
            format!(
                "SELECT contact_id, {cond}, 0::bigint, 'messaging', true, \
                   protocol || ':' || external_user_id \
                 FROM contact_messaging_channels WHERE domain_id = {domain} \
                   AND protocol = {p} AND external_user_id = {x}"
            )
        }
    }
}

fn build(domain: DomainId, query: &SearchQuery, after: Option<(i64, i64)>, limit: i64) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let branches: Vec<String> = query
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| branch(&mut sql, &d, i, c))
        .collect();
    let needed = if query.any { 1 } else { query.conditions.len() };
    let mut filters = vec![format!("agg.n >= {needed}")];
    filters.extend(filters_of(&mut sql, &d, query, after));
    let lim = sql.int(limit);
    sql.text = format!(
        "WITH hits (id, cond, sort_key, field, exact, value) AS ({}), \
         agg AS (SELECT id, min(sort_key) AS sort_key, count(DISTINCT cond) AS n, \
                   jsonb_agg(jsonb_build_object('f', field, 'e', exact, 'v', value) \
                             ORDER BY cond, sort_key) AS found_by \
                 FROM hits GROUP BY id) \
         SELECT agg.id, agg.sort_key, agg.found_by \
         FROM agg \
         WHERE {} \
         ORDER BY agg.sort_key, agg.id LIMIT {lim}",
        branches.join(" UNION ALL "),
        filters.join(" AND "),
    );
    sql
}

/// The owner, label and keyset filters on `agg.id` / `agg.sort_key`.
fn filters_of(
    sql: &mut Dynamic,
    d: &str,
    query: &SearchQuery,
    after: Option<(i64, i64)>,
) -> Vec<String> {
    let mut filters = Vec::new();
    if let Some(owner) = query.owner {
        let o = sql.int(owner.0);
        filters.push(format!(
            "(SELECT c.owner_id FROM contacts c WHERE c.id = agg.id) = {o}"
        ));
    }
    for label in &query.labels {
        let l = sql.text(label.clone());
        filters.push(format!(
            "(SELECT count(*) FROM contact_labels cl WHERE cl.contact_id = agg.id \
               AND cl.label_id = (SELECT l.id FROM labels l WHERE l.domain_id = {d} AND l.name = {l})) = 1"
        ));
    }
    if let Some((key, id)) = after {
        let k = sql.int(key);
        let i = sql.int(id);
        filters.push(format!("(agg.sort_key, agg.id) > ({k}, {i})"));
    }
    filters
}

/// The four ranks of a name match, in result order; each owns a band of 1,000 sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameTier {
    /// The whole normalised name equals the query (sort keys 0..=999).
    Exact,
    /// The name starts with the query (1000..=1999).
    Prefix,
    /// The name contains the query (2000..=2999).
    Substring,
    /// Only similar: typo tolerance (3000..=3999).
    Fuzzy,
}

impl NameTier {
    const ALL: [NameTier; 4] = [Self::Exact, Self::Prefix, Self::Substring, Self::Fuzzy];

    /// The bands a name query is searched in, in order: similar names only when it is
    /// typo-tolerant.
    fn of(q: &str) -> impl Iterator<Item = NameTier> + '_ {
        Self::ALL
            .into_iter()
            .filter(move |t| *t != Self::Fuzzy || typo_tolerant(q))
    }

    /// The last sort key of the band.
    fn last_key(self) -> i64 {
        match self {
            Self::Exact => 999,
            Self::Prefix => 1999,
            Self::Substring => 2999,
            Self::Fuzzy => 3999,
        }
    }
}

/// One band of a name-only search: the same rows, keys and reasons as the general statement
/// restricted to that band, with a predicate its index answers directly. Exact matches all
/// share one key, so they are paged in `id` order straight off `contacts_name_exact_idx`
/// however many contacts share the name.
fn build_name_tier(
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    tier: NameTier,
    after: Option<(i64, i64)>,
    limit: i64,
) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let raw = sql.text(q.to_owned());
    let escaped = sql.text(escape_like(q));
    let norm = format!("lower(immutable_unaccent({raw}))");
    let pattern = format!("lower(immutable_unaccent({escaped}))");
    let prefix = format!("name_search LIKE {pattern} || '%' ESCAPE '\\'");
    let contains = format!("name_search LIKE '%' || {pattern} || '%' ESCAPE '\\'");
    let (band, predicate) = match tier {
        NameTier::Exact => (0, format!("name_search = {norm}")),
        NameTier::Prefix => (1000, format!("{prefix} AND name_search <> {norm}")),
        NameTier::Substring => (2000, format!("{contains} AND NOT ({prefix})")),
        NameTier::Fuzzy => (3000, format!("{norm} <% name_search AND NOT ({contains})")),
    };
    let filters = filters_of(&mut sql, &d, query, after);
    let order = if tier == NameTier::Exact {
        "agg.id"
    } else {
        "agg.sort_key, agg.id"
    };
    let lim = sql.int(limit);
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    sql.text = format!(
        "SELECT agg.id, agg.sort_key, agg.found_by FROM ( \
           SELECT id, ({band} + 999 - floor(word_similarity({norm}, name_search) * 999))::bigint \
                    AS sort_key, \
                  jsonb_build_array(jsonb_build_object('f', 'name', 'e', name_search = {norm}, \
                    'v', display_name)) AS found_by \
           FROM contacts WHERE domain_id = {d} AND {predicate}) agg \
         {filters} ORDER BY {order} LIMIT {lim}"
    );
    sql
}

/// The name of a query that is one name condition (owner and label filters allowed).
fn name_only(query: &SearchQuery) -> Option<&str> {
    match query.conditions.as_slice() {
        [Condition::Name(q)] => Some(q),
        _ => None,
    }
}

/// Each statement a first page of `query` may run, with its arguments as (SQL type, value),
/// for EXPLAIN in tests: one for most queries, one per band for a name alone.
pub fn explainable(
    domain: DomainId,
    query: &SearchQuery,
    limit: i64,
) -> Vec<(String, Vec<(&'static str, String)>)> {
    let statements = match name_only(query) {
        Some(q) => NameTier::of(q)
            .map(|t| build_name_tier(domain, query, q, t, None, limit))
            .collect(),
        None => vec![build(domain, query, None, limit)],
    };
    statements
        .into_iter()
        .map(|sql| {
            let args = sql.args();
            (sql.text, args)
        })
        .collect()
}

/// One page of hits: up to `limit` rows after the keyset position `after`.
pub async fn search(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    query: &SearchQuery,
    after: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<SearchRow>, Error> {
    let Some(q) = name_only(query) else {
        let statement = build(domain, query, after, limit);
        return Ok(statement.load(conn).await?);
    };
    // A name alone is searched band by band, stopping once the page is full: a common full
    // name is answered from its exact matches without ranking every similar name.
    let mut rows: Vec<SearchRow> = Vec::new();
    for tier in NameTier::of(q) {
        if after.is_some_and(|(key, _)| key > tier.last_key()) {
            continue;
        }
        let want = limit - rows.len() as i64;
        let sql = build_name_tier(domain, query, q, tier, after, want);
        rows.extend(sql.load::<SearchRow>(conn).await?);
        if rows.len() as i64 >= limit {
            break;
        }
    }
    Ok(rows)
}

/// Labels starting with `prefix` (case-insensitive), most used first.
pub async fn labels(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    prefix: &str,
    limit: i64,
) -> Result<Vec<(String, i64)>, Error> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        uses: i64,
    }
    let lower = prefix.to_lowercase();
    let rows: Vec<Row> = diesel::sql_query(LABELS_SQL)
        .bind::<BigInt, _>(domain.0)
        .bind::<Text, _>(escape_like(&lower))
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.uses)).collect())
}

/// Label autocomplete: prefix match on the lower-cased name, by use count.
pub const LABELS_SQL: &str = "\
SELECT l.name, (SELECT count(*) FROM contact_labels cl WHERE cl.label_id = l.id) AS uses \
FROM labels l \
WHERE l.domain_id = $1 AND lower(l.name) LIKE $2 || '%' ESCAPE '\\' \
ORDER BY uses DESC, l.name LIMIT $3";
