//! Contact search as one SQL statement: each condition is an index-backed branch of a UNION ALL
//! that yields (contact, condition, sort key, reason); the branches are grouped per contact,
//! combined with AND (every condition) or OR (any), filtered by labels and owner, and paged by
//! keyset on (sort key, id). The filters are scalar subqueries on primary keys, which the planner
//! keeps as per-hit index lookups instead of hashing a whole label's or owner's contacts.

use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Jsonb, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

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

enum Bind {
    Int(i64),
    Text(String),
}

#[derive(Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn int(&mut self, v: i64) -> String {
        self.binds.push(Bind::Int(v));
        format!("${}", self.binds.len())
    }

    fn text(&mut self, v: impl Into<String>) -> String {
        self.binds.push(Bind::Text(v.into()));
        format!("${}", self.binds.len())
    }
}

/// The branch of one condition: `SELECT contact, cond, sort key, field, exact, value`.
fn branch(sql: &mut Sql, domain: &str, cond: usize, condition: &Condition) -> String {
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

fn build(domain: DomainId, query: &SearchQuery, after: Option<(i64, i64)>, limit: i64) -> Sql {
    let mut sql = Sql::default();
    let d = sql.int(domain.0);
    let branches: Vec<String> = query
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| branch(&mut sql, &d, i, c))
        .collect();
    let needed = if query.any { 1 } else { query.conditions.len() };
    let mut filters = vec![format!("agg.n >= {needed}")];
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

/// The SQL and its arguments as (SQL type, value), for EXPLAIN in tests and for the
/// benchmark's pgbench floor.
pub fn explainable(
    domain: DomainId,
    query: &SearchQuery,
    limit: i64,
) -> (String, Vec<(&'static str, String)>) {
    let sql = build(domain, query, None, limit);
    let args = sql
        .binds
        .iter()
        .map(|b| match b {
            Bind::Int(v) => ("bigint", v.to_string()),
            Bind::Text(t) => ("text", t.clone()),
        })
        .collect();
    (sql.text, args)
}

/// A built search: its SQL varies only with the query's shape (which conditions, how many), the
/// values being binds, so diesel's statement cache (keyed by SQL text for queries without a
/// static id) prepares each shape once per connection.
struct SearchStatement(Sql);

impl diesel::query_builder::QueryId for SearchStatement {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for SearchStatement {
    type SqlType = diesel::sql_types::Untyped;
}

impl diesel::query_builder::QueryFragment<Pg> for SearchStatement {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Pg>,
    ) -> diesel::QueryResult<()> {
        super::cached::push_sql_with_binds_owned(&mut out, &self.0.text, |n, out| {
            match self.0.binds.get(n.wrapping_sub(1)) {
                Some(Bind::Int(v)) => out.push_bind_param::<BigInt, _>(v),
                Some(Bind::Text(t)) => out.push_bind_param::<Text, _>(t),
                None => Err(diesel::result::Error::QueryBuilderError(
                    format!("search has no bind ${n}").into(),
                )),
            }
        })
    }
}

/// One page of hits: up to `limit` rows after the keyset position `after`.
pub async fn search(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    query: &SearchQuery,
    after: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<SearchRow>, Error> {
    let statement = SearchStatement(build(domain, query, after, limit));
    Ok(statement.load(conn).await?)
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
