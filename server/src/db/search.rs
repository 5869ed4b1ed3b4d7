//! Contact search.
//!
//! A name alone, the common search and the one that can match a large part of a domain, runs
//! band by band (equal names, names starting with the query, names with a later word starting
//! with it, other substrings, then similar names), each band one statement, stopping once the
//! page is full. The bands that can be broad page straight off a btree in their result order
//! with a LIMIT (`contacts_name_order_idx`, `contact_name_words`): a first name alone, a
//! surname alone or a typo of a common name reads a page of index entries, not every match.
//! The two bands that rank every match they hold are the rare ones: a fragment from inside
//! words, and names that are only similar as a whole.
//!
//! Any other query is one statement: each condition is an index-backed branch of a UNION ALL
//! that yields (contact, condition, sort key, tiebreak, reason); the branches are grouped per
//! contact, combined with AND (every condition) or OR (any), filtered by labels and owner, and
//! paged by keyset on (sort key, tiebreak, id). Its name branch ranks each match exactly as the
//! bands do, so a name gets the same order and reasons alone or combined. The filters are
//! scalar subqueries on primary keys, which the planner keeps as per-hit index lookups instead
//! of hashing a whole label's or owner's contacts. The page's cards come back in the same
//! statement (the card read of [`contacts::CARDS_SELECT`] joined laterally to each hit): one
//! round trip for a destination, attribute or messaging search, and one snapshot, so a hit
//! always has its card. A name alone loads the cards of its page after its bands.

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Jsonb, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cached::{Dynamic, positional};
use super::contacts::{self, CardRow};
use crate::domain::contact::ContactCard;
use crate::domain::ids::DomainId;
use crate::domain::search::{
    Condition, DestinationQuery, Position, SearchQuery, escape_like, one_word, typo_tolerant,
};
use crate::error::Error;

/// Most vocabulary words a one-word query's typo is matched against, best first; names that
/// only resemble it through another word still come, in the last band.
pub const MAX_SIMILAR_WORDS: i64 = 20;

/// One hit of a page.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct SearchRow {
    /// The contact.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its sort key (lower is better).
    #[diesel(sql_type = BigInt)]
    pub sort_key: i64,
    /// Orders hits of one sort key before their id (byte order).
    #[diesel(sql_type = Text)]
    pub tiebreak: String,
    /// Why it matched: `[{"f": field, "e": exact, "v": value}, ...]`.
    #[diesel(sql_type = Jsonb)]
    pub found_by: serde_json::Value,
}

impl SearchRow {
    /// Where this hit is in the result order (a page ending here continues after it).
    pub fn position(&self) -> Position {
        Position {
            sort_key: self.sort_key,
            tiebreak: self.tiebreak.clone(),
            id: self.id,
        }
    }
}

/// A vocabulary word that a one-word query resembles, and the sort key of the names it brings.
#[derive(Debug, Clone, diesel::QueryableByName)]
struct Term {
    #[diesel(sql_type = Text)]
    word: String,
    #[diesel(sql_type = BigInt)]
    key: i64,
}

/// The SQL of a name query inside one statement (its value bound once), about contact `c`.
struct NameSql {
    /// `lower(immutable_unaccent(query))`, as `name_search` is computed.
    norm: String,
    /// The same, LIKE-escaped.
    pattern: String,
}

impl NameSql {
    fn bind(sql: &mut Dynamic, q: &str) -> Self {
        let raw = sql.text(q.to_owned());
        let escaped = sql.text(escape_like(q));
        Self {
            norm: format!("lower(immutable_unaccent({raw}))"),
            pattern: format!("lower(immutable_unaccent({escaped}))"),
        }
    }

    /// The reason of a name hit.
    fn found_by(&self) -> String {
        format!(
            "jsonb_build_array(jsonb_build_object('f', 'name', 'e', c.name_search = {}, \
             'v', c.display_name))",
            self.norm
        )
    }

    /// Sort key `band + 0..=999` of a name in a ranked band: the more similar, the lower.
    fn ranked(&self, band: NameBand, similarity: &str) -> String {
        format!(
            "({} + 999 - floor({similarity} * 999))::bigint",
            band.first_key()
        )
    }

    /// True when the query starts a word after the first of the contact's name (band
    /// [`NameBand::Word`]): a regular expression computed once per statement rules out
    /// almost every name before the exact test runs.
    fn starts_later_word(&self) -> String {
        format!(
            "(c.name_search ~ (SELECT name_word_pattern({norm})) \
              AND name_word_starting(c.name_search, {norm}) IS NOT NULL)",
            norm = self.norm
        )
    }

    /// The contact's similarity to the query (pg_trgm's word similarity).
    fn similarity(&self) -> String {
        format!("word_similarity({}, c.name_search)", self.norm)
    }

    /// The vocabulary words the query resembles, best first, as (word, key).
    fn terms(&self, sql: &mut Dynamic, d: &str) -> String {
        let limit = sql.int(MAX_SIMILAR_WORDS);
        format!(
            "SELECT v.word::text AS word, {key} AS key FROM contact_name_vocabulary v \
             WHERE v.domain_id = {d} AND {norm} <% v.word ORDER BY 2, v.word LIMIT {limit}",
            key = self.ranked(
                NameBand::SimilarWord,
                &format!("word_similarity({}, v.word)", self.norm)
            ),
            norm = self.norm,
        )
    }
}

/// The bands of a name search, in result order; each owns 1,000 sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameBand {
    /// The whole name equals the query; by id.
    Exact,
    /// The name starts with the query; by name.
    Prefix,
    /// A later word starts with it; by that word.
    Word,
    /// The query is elsewhere in the name; by similarity, then name (ranks every match).
    Substring,
    /// A word of the name is a vocabulary word that a one-word query resembles; by how much
    /// (the word's sort key), then the word, then id.
    SimilarWord,
    /// The rest of the similar names; by similarity, then name (ranks every match).
    Similar,
}

impl NameBand {
    const ALL: [NameBand; 6] = [
        Self::Exact,
        Self::Prefix,
        Self::Word,
        Self::Substring,
        Self::SimilarWord,
        Self::Similar,
    ];

    /// The bands a name query is searched in: similar names only when it is typo-tolerant,
    /// similar words only when it is also one word.
    fn of(q: &str) -> impl Iterator<Item = NameBand> {
        let fuzzy = typo_tolerant(q);
        let word = fuzzy && one_word(q);
        Self::ALL.into_iter().filter(move |b| match b {
            Self::SimilarWord => word,
            Self::Similar => fuzzy,
            _ => true,
        })
    }

    /// The first sort key of the band.
    fn first_key(self) -> i64 {
        match self {
            Self::Exact => 0,
            Self::Prefix => 1000,
            Self::Word => 2000,
            Self::Substring => 3000,
            Self::SimilarWord => 4000,
            Self::Similar => 5000,
        }
    }

    /// The last sort key of the band.
    fn last_key(self) -> i64 {
        self.first_key() + 999
    }

    fn holds(self, key: i64) -> bool {
        (self.first_key()..=self.last_key()).contains(&key)
    }

    fn label(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Prefix => "prefix",
            Self::Word => "word",
            Self::Substring => "substring",
            Self::SimilarWord => "similar_word",
            Self::Similar => "similar",
        }
    }
}

/// The name branch of the general statement: every contact the name matches, with the sort
/// key, tiebreak and reason its band gives it (the bands' predicates, evaluated per row).
fn name_branch(sql: &mut Dynamic, domain: &str, cond: usize, q: &str) -> (String, String) {
    let n = NameSql::bind(sql, q);
    let (norm, pattern) = (&n.norm, &n.pattern);
    let fuzzy = typo_tolerant(q);
    let terms_cte = if fuzzy && one_word(q) {
        format!(
            "terms_{cond} (list) AS (SELECT coalesce(string_agg(t.word, ' ' ORDER BY t.key, \
             t.word COLLATE \"C\"), '') FROM ({}) t)",
            n.terms(sql, domain)
        )
    } else {
        format!("terms_{cond} (list) AS (SELECT ''::text)")
    };
    let terms = format!("string_to_array((SELECT list FROM terms_{cond}), ' ')");
    let fuzzy = if fuzzy {
        format!("OR {norm} <% c.name_search")
    } else {
        String::new()
    };
    let sim = "x.sim";
    let branch = format!(
        "SELECT c.id, {cond}, \
           (CASE WHEN c.name_search = {norm} THEN 0 \
                 WHEN starts_with(c.name_search, {norm}) THEN {prefix} \
                 WHEN x.later IS NOT NULL THEN {word} \
                 WHEN strpos(c.name_search, {norm}) > 0 THEN {substring} \
                 WHEN x.term IS NOT NULL THEN {similar_word} \
                 ELSE {similar} END)::bigint, \
           CASE WHEN c.name_search = {norm} THEN '' \
                WHEN starts_with(c.name_search, {norm}) THEN c.name_search \
                WHEN x.later IS NOT NULL THEN x.later \
                WHEN strpos(c.name_search, {norm}) > 0 THEN c.name_search \
                WHEN x.term IS NOT NULL THEN x.term \
                ELSE c.name_search END, \
           'name', c.name_search = {norm}, c.display_name \
         FROM contacts c CROSS JOIN LATERAL (SELECT {similarity} AS sim, \
             CASE WHEN {starts_later_word} \
                  THEN name_word_starting(c.name_search, {norm}) END AS later, \
             CASE WHEN name_words(c.name_search) && {terms} \
                  THEN (SELECT t.w FROM unnest({terms}) WITH ORDINALITY AS t (w, o) \
                        WHERE t.w = ANY (name_words(c.name_search)) ORDER BY t.o LIMIT 1) \
             END AS term) x \
         WHERE c.domain_id = {domain} \
           AND (c.name_search LIKE '%' || {pattern} || '%' ESCAPE '\\' {fuzzy})",
        prefix = NameBand::Prefix.first_key(),
        word = NameBand::Word.first_key(),
        substring = n.ranked(NameBand::Substring, sim),
        similar_word = n.ranked(
            NameBand::SimilarWord,
            &format!("word_similarity({norm}, x.term)")
        ),
        similar = n.ranked(NameBand::Similar, sim),
        similarity = n.similarity(),
        starts_later_word = n.starts_later_word(),
    );
    (terms_cte, branch)
}

/// The branch of a condition other than a name: `SELECT contact, cond, sort key, field,
/// exact, value` (with an empty tiebreak after the sort key when `tiebreak`).
fn branch(
    sql: &mut Dynamic,
    domain: &str,
    cond: usize,
    condition: &Condition,
    tiebreak: bool,
) -> String {
    let tb = if tiebreak { ", ''::text" } else { "" };
    match condition {
        Condition::Name(_) => unreachable!("names have their own branch"),
        Condition::Destination(DestinationQuery::Phone { e164 }) => {
            let e = sql.text(e164.clone());
            format!(
                "SELECT contact_id, {cond}, 0::bigint{tb}, 'phone', true, e164 \
                 FROM contact_phones WHERE domain_id = {domain} AND e164 = {e}"
            )
        }
        Condition::Destination(DestinationQuery::Digits(digits)) => {
            let d = sql.text(digits.clone());
            format!(
                "SELECT contact_id, {cond}, 1000::bigint{tb}, 'phone', false, e164 \
                 FROM contact_phones WHERE domain_id = {domain} AND e164 LIKE '%' || {d} || '%'"
            )
        }
        Condition::Destination(DestinationQuery::Email(prefix)) => {
            let p = sql.text(prefix.clone());
            let upper = sql.text(format!("{prefix}\u{10FFFF}"));
            format!(
                "SELECT contact_id, {cond}, CASE WHEN normalized = {p} THEN 0 ELSE 1000 END::bigint{tb}, \
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
                "SELECT contact_id, {cond}, 0::bigint{tb}, 'attribute', true, key || '=' || value \
                 FROM contact_attributes WHERE domain_id = {domain} AND key = {k} AND value = {v}"
            )
        }
        Condition::Attribute { key, value: None } => {
            let k = sql.text(key.clone());
            format!(
                "SELECT contact_id, {cond}, 0::bigint{tb}, 'attribute', true, key || '=' || value \
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
                "SELECT contact_id, {cond}, 0::bigint{tb}, 'messaging', true, \
                   protocol || ':' || external_user_id \
                 FROM contact_messaging_channels WHERE domain_id = {domain} \
                   AND protocol = {p} AND external_user_id = {x}"
            )
        }
    }
}

/// The general statement: any conditions, AND or OR, one page after `after`, each hit with its
/// card.
fn build(domain: DomainId, query: &SearchQuery, after: Option<&Position>, limit: i64) -> Dynamic {
    let (mut sql, order) = general(domain, query, after, limit);
    let d = sql.int(domain.0);
    sql.text = format!(
        "{CARDED_HIT_SELECT}({}) agg \
         CROSS JOIN LATERAL ({} WHERE c.domain_id = {d} AND c.id = agg.id) card \
         ORDER BY {order}",
        sql.text,
        contacts::CARDS_SELECT
    );
    sql
}

/// The hits of the general statement (columns id, sort_key, tiebreak, found_by) and their
/// order (on `agg`).
fn general(
    domain: DomainId,
    query: &SearchQuery,
    after: Option<&Position>,
    limit: i64,
) -> (Dynamic, &'static str) {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    // Hits are ordered by a tiebreak text too when a name is among the conditions; destination,
    // attribute and messaging searches keep their (sort key, id) statement.
    let named = query
        .conditions
        .iter()
        .any(|c| matches!(c, Condition::Name(_)));
    let mut ctes = Vec::new();
    let branches: Vec<String> = query
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Condition::Name(q) => {
                let (terms, branch) = name_branch(&mut sql, &d, i, q);
                ctes.push(terms);
                branch
            }
            other => branch(&mut sql, &d, i, other, named),
        })
        .collect();
    let needed = if query.any { 1 } else { query.conditions.len() };
    let mut filters = vec![format!("agg.n >= {needed}")];
    filters.extend(filters_of(&mut sql, &d, query));
    if let Some(at) = after {
        let k = sql.int(at.sort_key);
        let i = sql.int(at.id);
        filters.push(if named {
            let t = sql.text(at.tiebreak.clone());
            format!("(agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id) > ({k}, {t}, {i})")
        } else {
            format!("(agg.sort_key, agg.id) > ({k}, {i})")
        });
    }
    let lim = sql.int(limit);
    let (columns, tiebreak, order) = if named {
        (
            "id, cond, sort_key, tiebreak, field, exact, value",
            "(array_agg(tiebreak ORDER BY sort_key, tiebreak COLLATE \"C\"))[1]",
            "agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id",
        )
    } else {
        (
            "id, cond, sort_key, field, exact, value",
            "''::text",
            "agg.sort_key, agg.id",
        )
    };
    ctes.push(format!(
        "hits ({columns}) AS ({})",
        branches.join(" UNION ALL ")
    ));
    sql.text = format!(
        "WITH {}, \
         agg AS (SELECT id, min(sort_key) AS sort_key, {tiebreak} AS tiebreak, \
                   count(DISTINCT cond) AS n, \
                   jsonb_agg(jsonb_build_object('f', field, 'e', exact, 'v', value) \
                             ORDER BY cond, sort_key) AS found_by \
                 FROM hits GROUP BY id) \
         SELECT agg.id, agg.sort_key, agg.tiebreak, agg.found_by \
         FROM agg \
         WHERE {} \
         ORDER BY {order} LIMIT {lim}",
        ctes.join(", "),
        filters.join(" AND "),
    );
    (sql, order)
}

/// The owner and label filters on `agg.id`.
fn filters_of(sql: &mut Dynamic, d: &str, query: &SearchQuery) -> Vec<String> {
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
    filters
}

/// Wraps the rows of one band (`inner`, columns id, sort_key, tiebreak, found_by) with the
/// owner and label filters, the cursor predicates that are not the inner's, the order and the
/// limit.
fn page_of(
    mut sql: Dynamic,
    d: &str,
    query: &SearchQuery,
    inner: &str,
    outer: Option<String>,
    order: &str,
    limit: i64,
) -> Dynamic {
    let mut filters = filters_of(&mut sql, d, query);
    filters.extend(outer);
    let lim = sql.int(limit);
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    sql.text = format!(
        "SELECT agg.id, agg.sort_key, agg.tiebreak, agg.found_by FROM ({inner}) agg \
         {filters} ORDER BY {order} LIMIT {lim}"
    );
    sql
}

/// The cursor predicate `(sort_key, tiebreak, id) > after` on a ranked band's rows.
fn ranked_cursor(sql: &mut Dynamic, after: Option<&Position>) -> Option<String> {
    after.map(|at| {
        let k = sql.int(at.sort_key);
        let t = sql.text(at.tiebreak.clone());
        let i = sql.int(at.id);
        format!("(agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id) > ({k}, {t}, {i})")
    })
}

/// `AND (columns) > (tiebreak, id)` of `after` (nothing without a cursor), on the two columns
/// an index orders a band by.
fn text_cursor(sql: &mut Dynamic, after: Option<&Position>, columns: &str) -> String {
    after
        .map(|at| {
            let t = sql.text(at.tiebreak.clone());
            let i = sql.int(at.id);
            format!("AND ({columns}) > ({t}, {i})")
        })
        .unwrap_or_default()
}

/// The statement of one band of a name-only search, continuing after `after` when the cursor
/// lies in that band. `terms`: the words that [`NameBand::SimilarWord`] searched (their names
/// are not among the [`NameBand::Similar`] ones). [`NameBand::SimilarWord`] itself runs one
/// [`similar_word_statement`] per word.
fn band_statement(
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    band: NameBand,
    after: Option<&Position>,
    limit: i64,
    terms: &str,
) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let n = NameSql::bind(&mut sql, q);
    let (norm, pattern) = (&n.norm, &n.pattern);
    let found = n.found_by();
    let key = band.first_key();
    let by_name = "agg.tiebreak COLLATE \"C\", agg.id";
    let ranked = "agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id";
    let (inner, outer, order) = match band {
        NameBand::Exact => {
            let cursor = after
                .map(|at| format!("AND c.id > {}", sql.int(at.id)))
                .unwrap_or_default();
            let inner = format!(
                "SELECT c.id, {key}::bigint AS sort_key, ''::text AS tiebreak, {found} AS found_by \
                 FROM contacts c WHERE c.domain_id = {d} \
                   AND c.name_search COLLATE \"C\" = {norm} {cursor}"
            );
            (inner, None, "agg.id")
        }
        NameBand::Prefix => {
            let cursor = text_cursor(&mut sql, after, "c.name_search COLLATE \"C\", c.id");
            let inner = format!(
                "SELECT c.id, {key}::bigint AS sort_key, c.name_search AS tiebreak, {found} AS found_by \
                 FROM contacts c WHERE c.domain_id = {d} \
                   AND c.name_search COLLATE \"C\" > {norm} \
                   AND c.name_search COLLATE \"C\" < {norm} || chr(1114111) {cursor}"
            );
            (inner, None, by_name)
        }
        NameBand::Word => {
            // The later words starting with a one-word query, or equal to the first word of a
            // longer one ("o" for "o'b"). A contact comes once, through its least matching
            // word (`>=`: an equality would be taken for a join key and misestimated).
            let cursor = text_cursor(&mut sql, after, "w.word, w.contact_id");
            let inner = format!(
                "SELECT c.id, {key}::bigint AS sort_key, w.word::text AS tiebreak, {found} AS found_by \
                 FROM contact_name_words w \
                 JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
                 WHERE w.domain_id = {d} AND w.word >= (name_words({norm}))[1] \
                   AND w.word < CASE WHEN {norm} ~ '[\\x01-\\x2f]' THEN (name_words({norm}))[1] || chr(1) \
                                     ELSE {norm} || chr(1114111) END \
                   AND w.later {cursor} \
                   AND NOT starts_with(c.name_search, {norm}) \
                   AND name_word_starting(c.name_search, {norm}) >= w.word"
            );
            (inner, None, "agg.tiebreak COLLATE \"C\", agg.id")
        }
        NameBand::Substring => {
            let inner = format!(
                "SELECT c.id, {} AS sort_key, c.name_search AS tiebreak, {found} AS found_by \
                 FROM contacts c WHERE c.domain_id = {d} \
                   AND c.name_search LIKE '%' || {pattern} || '%' ESCAPE '\\' \
                   AND NOT starts_with(c.name_search, {norm}) \
                   AND NOT {}",
                n.ranked(band, &n.similarity()),
                n.starts_later_word()
            );
            (inner, ranked_cursor(&mut sql, after), ranked)
        }
        NameBand::SimilarWord | NameBand::Similar => {
            let terms = sql.text(terms.to_owned());
            let inner = format!(
                "SELECT c.id, {} AS sort_key, c.name_search AS tiebreak, {found} AS found_by \
                 FROM contacts c WHERE c.domain_id = {d} \
                   AND {norm} <% c.name_search \
                   AND c.name_search NOT LIKE '%' || {pattern} || '%' ESCAPE '\\' \
                   AND NOT (name_words(c.name_search) && string_to_array({terms}, ' '))",
                n.ranked(NameBand::Similar, &n.similarity())
            );
            (inner, ranked_cursor(&mut sql, after), ranked)
        }
    };
    page_of(sql, &d, query, &inner, outer, order, limit)
}

/// One word of [`NameBand::SimilarWord`]: the names holding `term` and none of the `better`
/// words (whose statements came first), in id order after `after_id`, straight off
/// `contact_name_words`. The similarity test is a function call, not the operator, so that
/// the planner never trades this ordered scan for the trigram index; "not a substring" is a
/// NOT LIKE, which the planner estimates as the near-certainty it is (as `strpos() = 0` it
/// was taken for a rare match, and the scan planned in parallel).
fn similar_word_statement(
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    term: &Term,
    better: &str,
    after_id: Option<i64>,
    limit: i64,
) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let n = NameSql::bind(&mut sql, q);
    let (norm, pattern, found) = (&n.norm, &n.pattern, n.found_by());
    let key = sql.int(term.key);
    let word = sql.text(term.word.clone());
    let better = sql.text(better.to_owned());
    let cursor = after_id
        .map(|i| format!("AND w.contact_id > {}", sql.int(i)))
        .unwrap_or_default();
    let inner = format!(
        "SELECT c.id, {key}::bigint AS sort_key, w.word::text AS tiebreak, {found} AS found_by \
         FROM contact_name_words w \
         JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
         WHERE w.domain_id = {d} AND w.word = {word} {cursor} \
           AND c.name_search NOT LIKE '%' || {pattern} || '%' ESCAPE '\\' \
           AND word_similarity_op({norm}, c.name_search) \
           AND NOT (name_words(c.name_search) && string_to_array({better}, ' '))"
    );
    page_of(sql, &d, query, &inner, None, "agg.id", limit)
}

/// The statement listing the vocabulary words a one-word query resembles.
fn terms_statement(domain: DomainId, q: &str) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let n = NameSql::bind(&mut sql, q);
    sql.text = n.terms(&mut sql, &d);
    sql
}

/// The name of a query that is one name condition (owner and label filters allowed).
fn name_only(query: &SearchQuery) -> Option<&str> {
    match query.conditions.as_slice() {
        [Condition::Name(q)] => Some(q),
        _ => None,
    }
}

/// A statement a search may run, for EXPLAIN in tests.
#[derive(Debug, Clone)]
pub struct Explainable {
    /// What it is: `general`, `terms`, or the band of a name alone (`exact`, `prefix`, `word`,
    /// `substring`, `similar_word`, `similar`).
    pub label: &'static str,
    /// The SQL, with `$n` placeholders.
    pub sql: String,
    /// The values of the placeholders as (SQL type, literal).
    pub args: Vec<(&'static str, String)>,
}

/// Each statement a first page of `query` may run: one for most queries; for a name alone one
/// per band, the vocabulary lookup, and the similar-word statement of `word` (one of the
/// words the lookup would return).
pub fn explainable(
    domain: DomainId,
    query: &SearchQuery,
    limit: i64,
    word: &str,
) -> Vec<Explainable> {
    let of = |label, sql: Dynamic| Explainable {
        label,
        args: sql.args(),
        sql: sql.text,
    };
    let Some(q) = name_only(query) else {
        return vec![of("general", build(domain, query, None, limit))];
    };
    let mut out = Vec::new();
    for band in NameBand::of(q) {
        if band == NameBand::SimilarWord {
            out.push(of("terms", terms_statement(domain, q)));
            let term = Term {
                word: word.to_owned(),
                key: band.first_key(),
            };
            let sql = similar_word_statement(domain, query, q, &term, "", None, limit);
            out.push(of(band.label(), sql));
        } else {
            let sql = band_statement(domain, query, q, band, None, limit, word);
            out.push(of(band.label(), sql));
        }
    }
    out
}

/// A row of the general statement, read by position: the hit and its card.
#[derive(diesel::Queryable)]
struct CardedHit {
    sort_key: i64,
    tiebreak: String,
    found_by: serde_json::Value,
    card: CardRow,
}

/// The SQL type of a [`CardedHit`].
type CardedHitSql = (BigInt, Text, Jsonb, contacts::CardSql);

/// The general statement's columns: [`CardedHit`]'s, the card's from
/// [`contacts::CARDS_SELECT`].
const CARDED_HIT_SELECT: &str = "SELECT agg.sort_key, agg.tiebreak, agg.found_by, card.* FROM ";

/// One page of hits: up to `limit` rows after the position `after`, each with its card (`None`
/// when the contact went away between a name's bands and its card load: the hit still counts
/// for the page's end).
pub async fn search(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    query: &SearchQuery,
    after: Option<&Position>,
    limit: i64,
) -> Result<Vec<(SearchRow, Option<ContactCard>)>, Error> {
    let Some(q) = name_only(query) else {
        let rows: Vec<CardedHit> =
            positional::<CardedHitSql, _>(build(domain, query, after, limit))
                .load(conn)
                .await?;
        return Ok(rows
            .into_iter()
            .map(|h| {
                let card = h.card.into_card();
                let hit = SearchRow {
                    id: card.id.0,
                    sort_key: h.sort_key,
                    tiebreak: h.tiebreak,
                    found_by: h.found_by,
                };
                (hit, Some(card))
            })
            .collect());
    };
    let rows = search_name(conn, domain, query, q, after, limit).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut cards: HashMap<i64, ContactCard> = contacts::load_cards(conn, domain, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id.0, c))
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let card = cards.remove(&r.id);
            (r, card)
        })
        .collect())
}

/// A name alone, band by band, stopping once the page is full.
async fn search_name(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    after: Option<&Position>,
    limit: i64,
) -> Result<Vec<SearchRow>, Error> {
    let mut rows: Vec<SearchRow> = Vec::new();
    // The words a one-word typo resembles, read once they are needed.
    let mut terms: Option<Vec<Term>> = None;
    for band in NameBand::of(q) {
        if after.is_some_and(|at| at.sort_key > band.last_key()) {
            continue;
        }
        let at = after.filter(|at| band.holds(at.sort_key));
        let terms = match band {
            NameBand::SimilarWord | NameBand::Similar if one_word(q) => match &terms {
                Some(t) => t.as_slice(),
                None => terms.insert(terms_statement(domain, q).load(conn).await?),
            },
            _ => &[],
        };
        if band == NameBand::SimilarWord {
            for (i, term) in terms.iter().enumerate() {
                let after_id = match at {
                    None => None,
                    Some(at) => match (term.key, term.word.as_str())
                        .cmp(&(at.sort_key, at.tiebreak.as_str()))
                    {
                        std::cmp::Ordering::Less => continue,
                        std::cmp::Ordering::Equal => Some(at.id),
                        std::cmp::Ordering::Greater => None,
                    },
                };
                let better = words(&terms[..i]);
                let want = limit - rows.len() as i64;
                let sql = similar_word_statement(domain, query, q, term, &better, after_id, want);
                rows.extend(sql.load::<SearchRow>(conn).await?);
                if rows.len() as i64 >= limit {
                    break;
                }
            }
        } else {
            let want = limit - rows.len() as i64;
            let sql = band_statement(domain, query, q, band, at, want, &words(terms));
            rows.extend(sql.load::<SearchRow>(conn).await?);
        }
        if rows.len() as i64 >= limit {
            break;
        }
    }
    Ok(rows)
}

/// Words as one space-separated text (words never hold a space).
fn words(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| t.word.as_str())
        .collect::<Vec<_>>()
        .join(" ")
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_general_statement_selects_the_hits_fields_in_order() {
        // Its rows are read by position; the card's columns are checked in `contacts`.
        assert_eq!(
            super::super::cached::output_columns(super::CARDED_HIT_SELECT),
            ["sort_key", "tiebreak", "found_by", "*"]
        );
    }
}
