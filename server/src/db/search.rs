//! Contact search.
//!
//! A name alone, the common search and the one that can match a large part of a domain, runs
//! band by band, each band one statement, stopping once the page is full: the equal name, names
//! whose first word is the query, names with a later word equal to it, names starting with it,
//! names with a later word starting with it, other substrings, then names whose every query
//! word is one of their words, exactly, as a prefix (the last word) or within its typos
//! ([`WordMatch`]), in any order. The bands that can be broad page straight off a btree in
//! their result order with a LIMIT (`contacts_name_order_idx`, `contact_name_words`): a first
//! name alone, a surname alone or a typo of a common name reads a page of index entries, not
//! every match. The substring band ranks every match it holds (a fragment from inside words is
//! rare), and so does the words band of a query of several words (the contacts holding a
//! match of every word, an intersection of index scans).
//!
//! Typos are found by the symmetric-deletion method over the domain's vocabulary of name words
//! (`contact_name_variants`, see its migration): one statement looks the query words' deletion
//! variants up and returns the few words sharing one; their exact distance is checked here
//! ([`WordMatch::of`]), as no PostgreSQL module computes a Damerau distance (fuzzystrmatch's
//! is Levenshtein's, where a swap costs two).
//!
//! Any other query is one statement: each condition is an index-backed branch of a UNION ALL
//! that yields (contact, condition, sort key, tiebreak, reason); the branches are grouped per
//! contact, combined with AND (every condition) or OR (any), filtered by labels and owner, and
//! paged by keyset on (sort key, tiebreak, id). Its name branch ranks each match exactly as the
//! bands do, so a name gets the same order and reasons alone or combined (a typo-tolerant name
//! looks its words up first). The filters are scalar subqueries on primary keys, which the
//! planner keeps as per-hit index lookups instead of hashing a whole label's or owner's
//! contacts. The page's cards come back in the same statement (the card read of
//! [`contacts::CARDS_SELECT`] joined laterally to each hit): one round trip for a destination,
//! attribute or messaging search, and one snapshot, so a hit always has its card. A name alone
//! loads the cards of its page after its bands.

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Jsonb, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::cached::{Dynamic, positional};
use super::contacts::{self, CardRow};
use crate::domain::contact::ContactCard;
use crate::domain::ids::DomainId;
use crate::domain::search::{
    Condition, DestinationQuery, Position, SearchQuery, WordMatch, escape_like, one_word,
    typo_tolerant,
};
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
    /// Orders hits of one sort key before their id (byte order).
    #[diesel(sql_type = Text)]
    pub tiebreak: String,
    /// Why it matched: `[{"f": field, "e": exact, "v": value, "m": words}, ...]`, where the
    /// words of a name matched word by word are `[[query word, position of the name's word
    /// (from 1), rank of the match ([`WordMatch::rank`]), number of the name's words, the
    /// name's word], ...]`.
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

/// A vocabulary word that a word of the query matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The query word (its index in [`WordMatches::words`]).
    pub qi: usize,
    /// The vocabulary word.
    pub word: String,
    /// How it matches.
    pub how: WordMatch,
}

/// The words of a typo-tolerant name query and the vocabulary words each matches exactly or
/// within its typos (prefixes of the last word are matched by the statements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordMatches {
    /// The query's words, normalised as names are (`name_words(lower(immutable_unaccent()))`).
    pub words: Vec<String>,
    /// The matching words, by query word, then match, then word (byte order).
    pub terms: Vec<Term>,
    /// The last query word starts a longer word of the vocabulary (it may match as a prefix).
    pub last_is_a_prefix: bool,
}

impl WordMatches {
    /// The typo terms of a one-word query, best first (its exact word and prefixes are
    /// substrings, in earlier bands).
    fn typos(&self) -> impl Iterator<Item = &Term> {
        self.terms.iter().filter(|t| t.how != WordMatch::Exact)
    }

    /// The terms of one query word.
    fn of(&self, qi: usize) -> impl Iterator<Item = &Term> {
        self.terms.iter().filter(move |t| t.qi == qi)
    }
}

/// A row of the vocabulary lookup: a query word, and a word sharing a deletion variant with
/// it (empty when none does).
#[derive(Debug, Clone, diesel::QueryableByName)]
struct LookupRow {
    #[diesel(sql_type = BigInt)]
    qi: i64,
    #[diesel(sql_type = Text)]
    qword: String,
    #[diesel(sql_type = Text)]
    word: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    longer: bool,
}

/// The statement finding, for each word of `q`, the vocabulary words that share a deletion
/// variant with it (one probe of `contact_name_variants` per variant), and whether some
/// vocabulary word is longer and starts with it (one probe of the vocabulary's key).
fn lookup_statement(domain: DomainId, q: &str) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let n = NameSql::bind(&mut sql, q);
    sql.text = format!(
        "SELECT q.ord AS qi, q.word AS qword, coalesce(v.word, '') AS word, \
           EXISTS (SELECT 1 FROM contact_name_vocabulary y WHERE y.domain_id = {d} \
                   AND y.word > q.word AND y.word < q.word || chr(1114111)) AS longer \
         FROM unnest(name_words({norm})) WITH ORDINALITY AS q (word, ord) \
         LEFT JOIN LATERAL (SELECT DISTINCT x.word::text AS word FROM contact_name_variants x \
             WHERE x.domain_id = {d} \
               AND x.variant = ANY (name_word_deletions(q.word, name_query_deletions(q.word)))) v \
           ON true \
         ORDER BY 1, 3",
        norm = n.norm
    );
    sql
}

/// The words of `q` and what each matches in the domain's vocabulary.
pub async fn lookup(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    q: &str,
) -> Result<WordMatches, Error> {
    let rows: Vec<LookupRow> = lookup_statement(domain, q).load(conn).await?;
    let mut m = WordMatches::default();
    for r in rows {
        let qi = usize::try_from(r.qi - 1).unwrap_or_default();
        if m.words.len() <= qi {
            m.words.resize(qi + 1, String::new());
            m.words[qi] = r.qword.clone();
            m.last_is_a_prefix = r.longer;
        }
        if let Some(how) = WordMatch::of(&r.qword, &r.word).filter(|_| !r.word.is_empty()) {
            m.terms.push(Term {
                qi,
                word: r.word,
                how,
            });
        }
    }
    m.terms
        .sort_by(|a, b| (a.qi, a.how, &a.word).cmp(&(b.qi, b.how, &b.word)));
    Ok(m)
}

/// True when a name query has a words band: it is typo-tolerant, and either has several words
/// (found in any order) or is one word long enough to be a typo of a word of 5 letters.
fn has_words_band(q: &str) -> bool {
    typo_tolerant(q) && (!one_word(q) || q.trim().chars().count() >= 4)
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

    /// The reason of a hit of the words band, whose words matched as `how` says.
    fn found_by_words(how: &str) -> String {
        format!(
            "jsonb_build_array(jsonb_build_object('f', 'name', 'e', false, \
             'v', c.display_name, 'm', {how}))"
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

    /// True when the name's first word is the query's (it starts with the query followed by
    /// a separator): [`NameBand::FirstWord`], a range of `contacts_name_order_idx`.
    fn first_word(&self) -> String {
        format!(
            "(c.name_search COLLATE \"C\" > {norm} AND c.name_search COLLATE \"C\" < {norm} || '0')",
            norm = self.norm
        )
    }

    /// The contact's similarity to the query (pg_trgm's word similarity).
    fn similarity(&self) -> String {
        format!("word_similarity({}, c.name_search)", self.norm)
    }
}

/// The SQL of a query's word matches inside one statement (bound once).
struct WordsSql {
    /// The number of query words, bound.
    count: String,
    /// The last query word, bound.
    last: String,
    /// The terms' query word index (from 1), word and rank, as text arrays.
    qi: String,
    word: String,
    rank: String,
    /// The query words, as a text array.
    words: String,
}

impl WordsSql {
    fn bind(sql: &mut Dynamic, m: &WordMatches) -> Self {
        let join =
            |f: &dyn Fn(&Term) -> String| m.terms.iter().map(f).collect::<Vec<_>>().join(" ");
        let qi = join(&|t| (t.qi + 1).to_string());
        let word = join(&|t| t.word.clone());
        let rank = join(&|t| t.how.rank().to_string());
        Self {
            count: sql.int(m.words.len() as i64),
            last: sql.text(m.words.last().cloned().unwrap_or_default()),
            qi: format!("string_to_array({}, ' ')::int[]", sql.text(qi)),
            word: format!("string_to_array({}, ' ')", sql.text(word)),
            rank: format!("string_to_array({}, ' ')::int[]", sql.text(rank)),
            words: format!("string_to_array({}, ' ')", sql.text(m.words.join(" "))),
        }
    }

    /// The contacts holding a match of every query word (`contact_id`), as an intersection
    /// of `contact_name_words` scans; `None` when a word matches nothing. A last word of one
    /// letter is left out (all the words starting with it are a large part of the index) and
    /// checked per contact by [`WordsSql::matched`].
    fn candidates(&self, sql: &mut Dynamic, d: &str, m: &WordMatches) -> Option<String> {
        let mut parts = Vec::new();
        for (qi, w) in m.words.iter().enumerate() {
            let last = qi + 1 == m.words.len();
            let words: Vec<&str> = m.of(qi).map(|t| t.word.as_str()).collect();
            let mut scans = Vec::new();
            if !words.is_empty() {
                let list = sql.text(words.join(" "));
                scans.push(format!(
                    "SELECT w.contact_id FROM contact_name_words w \
                     WHERE w.domain_id = {d} AND w.word = ANY (string_to_array({list}, ' '))"
                ));
            }
            if last {
                if w.chars().count() < 2 {
                    continue;
                }
                scans.push(format!(
                    "SELECT w.contact_id FROM contact_name_words w \
                     WHERE w.domain_id = {d} AND w.word > {l} AND w.word < {l} || chr(1114111)",
                    l = self.last
                ));
            }
            if scans.is_empty() {
                return None;
            }
            parts.push(format!(
                "SELECT s{qi}.contact_id FROM ({}) s{qi}",
                scans.join(" UNION ALL ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join(" INTERSECT "))
    }

    /// A lateral subquery `m` about contact `c`: `matched` (query words with a match among
    /// the name's words), `worst` (the worst of their best matches' ranks), `exact` (query
    /// words matched exactly), `word` (the best matching word of the first query word) and
    /// `how` (the reason's `[[query word, position, rank], ...]`).
    fn matched(&self) -> String {
        format!(
            "LATERAL (SELECT count(*) AS matched, coalesce(max(b.rank), 0) AS worst, \
                 count(*) FILTER (WHERE b.rank = 0) AS exact, \
                 (array_agg(b.word ORDER BY b.qi))[1] AS word, \
                 jsonb_agg(jsonb_build_array(({words})[b.qi], \
                     array_position(name_words(c.name_search), b.word), b.rank, \
                     cardinality(name_words(c.name_search)), b.word) ORDER BY b.qi) AS how \
               FROM (SELECT DISTINCT ON (t.qi) t.qi, t.word, t.rank \
                     FROM (SELECT t.qi, t.word, t.rank \
                           FROM unnest({qi}, {word}, {rank}) AS t (qi, word, rank) \
                           WHERE t.word = ANY (name_words(c.name_search)) \
                           UNION ALL \
                           SELECT {count}::int, nw.w, 1 FROM unnest(name_words(c.name_search)) AS nw (w) \
                           WHERE starts_with(nw.w, {last}) AND nw.w <> {last}) t \
                     ORDER BY t.qi, t.rank, t.word COLLATE \"C\") b) m",
            words = self.words,
            qi = self.qi,
            word = self.word,
            rank = self.rank,
            count = self.count,
            last = self.last,
        )
    }

    /// The sort key of a name all of whose query words matched: the words band's first key,
    /// 1,000 per rank of the worst match, plus the query words not matched exactly.
    fn key(&self) -> String {
        format!(
            "({} + 1000 * m.worst + {} - m.exact)::bigint",
            NameBand::Words.first_key(),
            self.count
        )
    }
}

/// The bands of a name search, in result order; each owns 1,000 sort keys (the words band
/// 4,000: one per rank of [`WordMatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameBand {
    /// The whole name equals the query; by id.
    Exact,
    /// The name's first word(s) are the query (it follows with a separator); by name.
    FirstWord,
    /// (One-word queries) a later word is the query; by id.
    LaterWord,
    /// The name starts with the query; by name.
    Prefix,
    /// A later word starts with it; by that word.
    Word,
    /// The query is elsewhere in the name; by similarity, then name (ranks every match).
    Substring,
    /// Every query word matches a word of the name, exactly, as a prefix (the last) or within
    /// its typos, in any order: by the worst match, then the words not matched exactly, then
    /// (one word) the word and id, (several) id.
    Words,
}

impl NameBand {
    const ALL: [NameBand; 7] = [
        Self::Exact,
        Self::FirstWord,
        Self::LaterWord,
        Self::Prefix,
        Self::Word,
        Self::Substring,
        Self::Words,
    ];

    /// The bands a name query is searched in.
    fn of(q: &str) -> impl Iterator<Item = NameBand> {
        let one = one_word(q);
        let words = has_words_band(q);
        Self::ALL.into_iter().filter(move |b| match b {
            Self::LaterWord => one,
            Self::Words => words,
            _ => true,
        })
    }

    /// The first sort key of the band.
    fn first_key(self) -> i64 {
        match self {
            Self::Exact => 0,
            Self::FirstWord => 1000,
            Self::LaterWord => 2000,
            Self::Prefix => 3000,
            Self::Word => 4000,
            Self::Substring => 5000,
            Self::Words => 6000,
        }
    }

    /// The last sort key of the band.
    fn last_key(self) -> i64 {
        match self {
            Self::Words => self.first_key() + 3999,
            _ => self.first_key() + 999,
        }
    }

    fn holds(self, key: i64) -> bool {
        (self.first_key()..=self.last_key()).contains(&key)
    }

    fn label(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::FirstWord => "first_word",
            Self::LaterWord => "later_word",
            Self::Prefix => "prefix",
            Self::Word => "word",
            Self::Substring => "substring",
            Self::Words => "words",
        }
    }
}

/// The name branch of the general statement: every contact the name matches, with the sort
/// key, tiebreak, reason and word matches its band gives it (the bands' predicates, evaluated
/// per row). `m`: the query's word matches when it has a words band.
fn name_branch(
    sql: &mut Dynamic,
    domain: &str,
    cond: usize,
    q: &str,
    m: Option<&WordMatches>,
) -> String {
    let n = NameSql::bind(sql, q);
    let (norm, pattern) = (&n.norm, &n.pattern);
    let one = one_word(q);
    let like = format!("c.name_search LIKE '%' || {pattern} || '%' ESCAPE '\\'");
    let mut union = String::new();
    let mut lateral = String::new();
    let mut matched = "false".to_owned();
    let mut words_key = "NULL".to_owned();
    let mut words_tiebreak = "NULL".to_owned();
    let mut how = "NULL::jsonb".to_owned();
    // A name matched word by word is among the candidates; without any (a word matches
    // nothing), only substrings match.
    let words = m.and_then(|m| {
        let w = WordsSql::bind(sql, m);
        Some((w.candidates(sql, domain, m)?, w))
    });
    if let Some((cands, w)) = words {
        union = format!(" UNION SELECT k.contact_id FROM ({cands}) k");
        lateral = format!(" CROSS JOIN {}", w.matched());
        matched = format!("m.matched = {}", w.count);
        words_key = w.key();
        words_tiebreak = if one { "m.word" } else { "''" }.to_owned();
        how = format!("CASE WHEN strpos(c.name_search, {norm}) = 0 THEN m.how END");
    }
    let later_word = if one {
        format!(
            "WHEN x.later = {norm} THEN {} ",
            NameBand::LaterWord.first_key()
        )
    } else {
        String::new()
    };
    let later_word_tiebreak = if one {
        format!("WHEN x.later = {norm} THEN x.later ")
    } else {
        String::new()
    };
    format!(
        "SELECT c.id, {cond}, \
           (CASE WHEN c.name_search = {norm} THEN 0 \
                 WHEN {first_word} THEN {first} \
                 {later_word}\
                 WHEN starts_with(c.name_search, {norm}) THEN {prefix} \
                 WHEN x.later IS NOT NULL THEN {word} \
                 WHEN strpos(c.name_search, {norm}) > 0 THEN {substring} \
                 ELSE {words_key} END)::bigint, \
           CASE WHEN c.name_search = {norm} THEN '' \
                WHEN {first_word} THEN c.name_search \
                {later_word_tiebreak}\
                WHEN starts_with(c.name_search, {norm}) THEN c.name_search \
                WHEN x.later IS NOT NULL THEN x.later \
                WHEN strpos(c.name_search, {norm}) > 0 THEN c.name_search \
                ELSE {words_tiebreak} END, \
           'name', c.name_search = {norm}, c.display_name, {how} \
         FROM (SELECT c.id FROM contacts c WHERE c.domain_id = {domain} AND {like}{union}) k \
         JOIN contacts c ON c.domain_id = {domain} AND c.id = k.id \
         CROSS JOIN LATERAL (SELECT CASE WHEN {starts_later_word} \
                  THEN name_word_starting(c.name_search, {norm}) END AS later) x{lateral} \
         WHERE {like} OR {matched}",
        first_word = n.first_word(),
        first = NameBand::FirstWord.first_key(),
        prefix = NameBand::Prefix.first_key(),
        word = NameBand::Word.first_key(),
        substring = n.ranked(NameBand::Substring, &n.similarity()),
        starts_later_word = n.starts_later_word(),
    )
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
fn build(
    domain: DomainId,
    query: &SearchQuery,
    words: Option<&WordMatches>,
    after: Option<&Position>,
    limit: i64,
) -> Dynamic {
    let (mut sql, order) = general(domain, query, words, after, limit);
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
/// order (on `agg`). `words`: the word matches of its name, when it has a words band.
fn general(
    domain: DomainId,
    query: &SearchQuery,
    words: Option<&WordMatches>,
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
            Condition::Name(q) => name_branch(&mut sql, &d, i, q, words),
            other if named => format!(
                "SELECT b.*, NULL::jsonb FROM ({}) b",
                branch(&mut sql, &d, i, other, true)
            ),
            other => branch(&mut sql, &d, i, other, false),
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
    let (columns, tiebreak, order, reason) = if named {
        (
            "id, cond, sort_key, tiebreak, field, exact, value, how",
            "(array_agg(tiebreak ORDER BY sort_key, tiebreak COLLATE \"C\"))[1]",
            "agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id",
            "jsonb_strip_nulls(jsonb_build_object('f', field, 'e', exact, 'v', value, 'm', how))",
        )
    } else {
        (
            "id, cond, sort_key, field, exact, value",
            "''::text",
            "agg.sort_key, agg.id",
            "jsonb_build_object('f', field, 'e', exact, 'v', value)",
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
                   jsonb_agg({reason} ORDER BY cond, sort_key) AS found_by \
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
/// lies in that band. The words band of a one-word query runs one [`term_statement`] per
/// typo term instead; of a query of several words, [`words_statement`].
fn band_statement(
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    band: NameBand,
    after: Option<&Position>,
    limit: i64,
) -> Dynamic {
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let n = NameSql::bind(&mut sql, q);
    let (norm, pattern) = (&n.norm, &n.pattern);
    let found = n.found_by();
    let key = band.first_key();
    let by_name = "agg.tiebreak COLLATE \"C\", agg.id";
    let ranked = "agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id";
    let one = one_word(q);
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
        NameBand::FirstWord => {
            let cursor = text_cursor(&mut sql, after, "c.name_search COLLATE \"C\", c.id");
            let inner = format!(
                "SELECT c.id, {key}::bigint AS sort_key, c.name_search AS tiebreak, {found} AS found_by \
                 FROM contacts c WHERE c.domain_id = {d} AND {} {cursor}",
                n.first_word()
            );
            (inner, None, by_name)
        }
        NameBand::LaterWord => {
            // The names holding the query as a later word, by id off `contact_name_words`,
            // but those whose first word it is (the band before).
            let cursor = after
                .map(|at| format!("AND w.contact_id > {}", sql.int(at.id)))
                .unwrap_or_default();
            let inner = format!(
                "SELECT c.id, {key}::bigint AS sort_key, w.word::text AS tiebreak, {found} AS found_by \
                 FROM contact_name_words w \
                 JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
                 WHERE w.domain_id = {d} AND w.word = {norm} AND w.later {cursor} \
                   AND c.name_search <> {norm} AND NOT {}",
                n.first_word()
            );
            (inner, None, "agg.id")
        }
        NameBand::Prefix => {
            // Names starting with the query followed by a letter or digit; for one word, not
            // those holding it as a later word too (the band before).
            let cursor = text_cursor(&mut sql, after, "c.name_search COLLATE \"C\", c.id");
            let not_later = if one {
                format!("AND NOT ({norm} = ANY ((name_words(c.name_search))[2:]))")
            } else {
                String::new()
            };
            let inner = format!(
                "SELECT c.id, {key}::bigint AS sort_key, c.name_search AS tiebreak, {found} AS found_by \
                 FROM contacts c WHERE c.domain_id = {d} \
                   AND c.name_search COLLATE \"C\" >= {norm} || '0' \
                   AND c.name_search COLLATE \"C\" < {norm} || chr(1114111) {not_later} {cursor}"
            );
            (inner, None, by_name)
        }
        NameBand::Word => {
            // The later words starting with a one-word query (but the query itself, the later
            // word band), or equal to the first word of a longer one ("o" for "o'b"). A
            // contact comes once, through its least matching word (`>=`: an equality would be
            // taken for a join key and misestimated).
            let cursor = text_cursor(&mut sql, after, "w.word, w.contact_id");
            let from = if one { ">" } else { ">=" };
            let inner = format!(
                "SELECT c.id, {key}::bigint AS sort_key, w.word::text AS tiebreak, {found} AS found_by \
                 FROM contact_name_words w \
                 JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
                 WHERE w.domain_id = {d} AND w.word {from} (name_words({norm}))[1] \
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
        NameBand::Words => unreachable!("the words band has its own statements"),
    };
    page_of(sql, &d, query, &inner, outer, order, limit)
}

/// One typo term of a one-word query (the words band): the names holding `term` and none of
/// the `better` terms (whose statements came first), in id order after `after_id`, straight
/// off `contact_name_words`. "Not a substring" (the earlier bands) is a NOT LIKE, which the
/// planner estimates as the near-certainty it is (as `strpos() = 0` it was taken for a rare
/// match, and the scan planned in parallel).
fn term_statement(
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
    let pattern = &n.pattern;
    let key = sql.int(term_key(term));
    let word = sql.text(term.word.clone());
    let rank = sql.int(term.how.rank());
    let better = sql.text(better.to_owned());
    let cursor = after_id
        .map(|i| format!("AND w.contact_id > {}", sql.int(i)))
        .unwrap_or_default();
    let how = format!(
        "jsonb_build_array(jsonb_build_array((name_words({norm}))[1], \
           array_position(name_words(c.name_search), w.word::text), {rank}, \
           cardinality(name_words(c.name_search)), w.word::text))",
        norm = n.norm
    );
    let found = NameSql::found_by_words(&how);
    let inner = format!(
        "SELECT c.id, {key}::bigint AS sort_key, w.word::text AS tiebreak, {found} AS found_by \
         FROM contact_name_words w \
         JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
         WHERE w.domain_id = {d} AND w.word = {word} {cursor} \
           AND c.name_search NOT LIKE '%' || {pattern} || '%' ESCAPE '\\' \
           AND NOT (name_words(c.name_search) && string_to_array({better}, ' '))"
    );
    page_of(sql, &d, query, &inner, None, "agg.id", limit)
}

/// The sort key of the names a one-word query's typo term brings ([`WordsSql::key`] with one
/// word, matched with a typo).
fn term_key(term: &Term) -> i64 {
    NameBand::Words.first_key() + 1000 * term.how.rank() + 1
}

/// The words band of a query of several words: the contacts holding a match of every word
/// and not holding the query as a substring (the earlier bands), ranked by their worst match
/// and the words not matched exactly, then by id. The ranks come from `contact_name_words`
/// alone (the matching words of each contact, grouped), so that contacts are read in rank
/// order only until the page is full, and the reasons built for the page alone.
fn words_statement(
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    m: &WordMatches,
    after: Option<&Position>,
    limit: i64,
) -> Option<Dynamic> {
    let last = m.words.len().checked_sub(1)?;
    if (0..last).any(|qi| m.of(qi).next().is_none()) {
        return None;
    }
    if let Some(sql) = one_combination(domain, query, q, m, after, limit) {
        return Some(sql);
    }
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let n = NameSql::bind(&mut sql, q);
    let w = WordsSql::bind(&mut sql, m);
    let inner = format!(
        "SELECT c.id, ({first} + 1000 * k.worst + {count} - k.exact)::bigint AS sort_key, \
           ''::text AS tiebreak, NULL::jsonb AS found_by \
         FROM (SELECT h.contact_id, max(h.r) AS worst, count(*) FILTER (WHERE h.r = 0) AS exact \
               FROM (SELECT x.contact_id, x.qi, min(x.r) AS r \
                     FROM (SELECT w.contact_id, t.qi, t.rank AS r \
                           FROM unnest({qi}, {word}, {rank}) AS t (qi, word, rank) \
                           JOIN contact_name_words w ON w.domain_id = {d} AND w.word = t.word \
                           UNION ALL \
                           SELECT w.contact_id, {count}::int, 1 FROM contact_name_words w \
                           WHERE w.domain_id = {d} AND w.word > {l} AND w.word < {l} || chr(1114111)) x \
                     GROUP BY 1, 2) h \
               GROUP BY h.contact_id HAVING count(*) = {count}) k \
         JOIN contacts c ON c.domain_id = {d} AND c.id = k.contact_id \
         WHERE c.name_search NOT LIKE '%' || {pattern} || '%' ESCAPE '\\'",
        first = NameBand::Words.first_key(),
        count = w.count,
        qi = w.qi,
        word = w.word,
        rank = w.rank,
        l = w.last,
        pattern = n.pattern,
    );
    let cursor = ranked_cursor(&mut sql, after);
    let page = page_of(
        sql,
        &d,
        query,
        &inner,
        cursor,
        "agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id",
        limit,
    );
    Some(with_reasons(page, &d, &w))
}

/// A page of the words band (its `found_by` NULL) with each hit's reason, built for the page's
/// contacts alone.
fn with_reasons(mut page: Dynamic, d: &str, w: &WordsSql) -> Dynamic {
    page.text = format!(
        "SELECT p.id, p.sort_key, p.tiebreak, {found} AS found_by FROM ({paged}) p \
         JOIN contacts c ON c.domain_id = {d} AND c.id = p.id CROSS JOIN {matched} \
         ORDER BY p.sort_key, p.id",
        found = NameSql::found_by_words("m.how"),
        paged = page.text,
        matched = w.matched(),
    );
    page
}

/// The words band of a query of several words when each word matches exactly one word of the
/// vocabulary and the last starts no longer one (a misspelt full name, typically): every
/// contact of the band has the same rank, so the band is the contacts holding all those words,
/// by id, and is paged by a join of their postings in id order (`contact_name_words` keeps
/// each word's contacts in id order), stopping at the page instead of grouping every posting.
fn one_combination(
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    m: &WordMatches,
    after: Option<&Position>,
    limit: i64,
) -> Option<Dynamic> {
    let single = m.terms.len() == m.words.len()
        && (0..m.words.len()).all(|qi| m.of(qi).count() == 1)
        && !m.last_is_a_prefix;
    if !single || m.words.len() < 2 {
        return None;
    }
    let n = m.words.len() as i64;
    let worst = m.terms.iter().map(|t| t.how.rank()).max().unwrap_or(0);
    let exact = m.terms.iter().filter(|t| t.how == WordMatch::Exact).count() as i64;
    let key_value = NameBand::Words.first_key() + 1000 * worst + n - exact;
    let mut sql = Dynamic::default();
    let d = sql.int(domain.0);
    let name = NameSql::bind(&mut sql, q);
    let w = WordsSql::bind(&mut sql, m);
    let key = sql.int(key_value);
    let cursor = match after {
        Some(at) if at.sort_key == key_value => format!("AND w0.contact_id > {}", sql.int(at.id)),
        _ => String::new(),
    };
    let mut joins = String::new();
    for (i, t) in m.terms.iter().enumerate().skip(1) {
        let word = sql.text(t.word.clone());
        joins += &format!(
            " JOIN contact_name_words w{i} ON w{i}.domain_id = w0.domain_id \
               AND w{i}.word = {word} AND w{i}.contact_id = w0.contact_id"
        );
    }
    let first = sql.text(m.terms[0].word.clone());
    let inner = format!(
        "SELECT c.id, {key}::bigint AS sort_key, ''::text AS tiebreak, NULL::jsonb AS found_by \
         FROM contact_name_words w0{joins} \
         JOIN contacts c ON c.domain_id = w0.domain_id AND c.id = w0.contact_id \
         WHERE w0.domain_id = {d} AND w0.word = {first} {cursor} \
           AND c.name_search NOT LIKE '%' || {pattern} || '%' ESCAPE '\\'",
        pattern = name.pattern,
    );
    let page = page_of(sql, &d, query, &inner, None, "agg.id", limit);
    Some(with_reasons(page, &d, &w))
}

/// The name of a query that is one name condition (owner and label filters allowed).
fn name_only(query: &SearchQuery) -> Option<&str> {
    match query.conditions.as_slice() {
        [Condition::Name(q)] => Some(q),
        _ => None,
    }
}

/// The name condition of a query, when it has a words band.
fn words_name(query: &SearchQuery) -> Option<&str> {
    query.conditions.iter().find_map(|c| match c {
        Condition::Name(q) if has_words_band(q) => Some(q.as_str()),
        _ => None,
    })
}

/// A statement a search may run, for EXPLAIN in tests.
#[derive(Debug, Clone)]
pub struct Explainable {
    /// What it is: `general`, `lookup`, or the band of a name alone (`exact`, `first_word`,
    /// `later_word`, `prefix`, `word`, `substring`, `words`; `term` for a one-word query's
    /// typo term).
    pub label: &'static str,
    /// The SQL, with `$n` placeholders.
    pub sql: String,
    /// The values of the placeholders as (SQL type, literal).
    pub args: Vec<(&'static str, String)>,
}

/// Each statement a first page of `query` may run, given that its name's words match as
/// `words` says (what [`lookup`] would find): the lookup, then one statement for most
/// queries; for a name alone one per band (its first typo term's for a one-word query).
pub fn explainable(
    domain: DomainId,
    query: &SearchQuery,
    limit: i64,
    words: &WordMatches,
) -> Vec<Explainable> {
    let of = |label, sql: Dynamic| Explainable {
        label,
        args: sql.args(),
        sql: sql.text,
    };
    let mut out = Vec::new();
    let wq = words_name(query);
    if let Some(q) = wq {
        out.push(of("lookup", lookup_statement(domain, q)));
    }
    let Some(q) = name_only(query) else {
        out.push(of(
            "general",
            build(domain, query, wq.map(|_| words), None, limit),
        ));
        return out;
    };
    for band in NameBand::of(q) {
        if band != NameBand::Words {
            let sql = band_statement(domain, query, q, band, None, limit);
            out.push(of(band.label(), sql));
        } else if one_word(q) {
            if let Some(term) = words.typos().next() {
                let sql = term_statement(domain, query, q, term, "", None, limit);
                out.push(of("term", sql));
            }
        } else if let Some(sql) = words_statement(domain, query, q, words, None, limit) {
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
        let words = match words_name(query) {
            Some(q) => Some(lookup(conn, domain, q).await?),
            None => None,
        };
        let rows: Vec<CardedHit> =
            positional::<CardedHitSql, _>(build(domain, query, words.as_ref(), after, limit))
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
    for band in NameBand::of(q) {
        if after.is_some_and(|at| at.sort_key > band.last_key()) {
            continue;
        }
        let at = after.filter(|at| band.holds(at.sort_key));
        let want = limit - rows.len() as i64;
        if band != NameBand::Words {
            let sql = band_statement(domain, query, q, band, at, want);
            rows.extend(sql.load::<SearchRow>(conn).await?);
        } else {
            let words = lookup(conn, domain, q).await?;
            if one_word(q) {
                search_terms(conn, domain, query, q, &words, at, limit, &mut rows).await?;
            } else if let Some(sql) = words_statement(domain, query, q, &words, at, want) {
                rows.extend(sql.load::<SearchRow>(conn).await?);
            }
        }
        if rows.len() as i64 >= limit {
            break;
        }
    }
    Ok(rows)
}

/// The words band of a one-word query: term by term, best first, each term's names by id.
#[allow(clippy::too_many_arguments)]
async fn search_terms(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    query: &SearchQuery,
    q: &str,
    words: &WordMatches,
    at: Option<&Position>,
    limit: i64,
    rows: &mut Vec<SearchRow>,
) -> Result<(), Error> {
    let terms: Vec<&Term> = words.typos().collect();
    for (i, term) in terms.iter().enumerate() {
        let after_id = match at {
            None => None,
            Some(at) => match (term_key(term), term.word.as_str())
                .cmp(&(at.sort_key, at.tiebreak.as_str()))
            {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => Some(at.id),
                std::cmp::Ordering::Greater => None,
            },
        };
        let better = terms[..i]
            .iter()
            .map(|t| t.word.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let want = limit - rows.len() as i64;
        let sql = term_statement(domain, query, q, term, &better, after_id, want);
        rows.extend(sql.load::<SearchRow>(conn).await?);
        if rows.len() as i64 >= limit {
            break;
        }
    }
    Ok(())
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
