//! The floor: the SQL a scenario's RPC runs, replayed by pgbench with prepared statements at the
//! same concurrency and duration. The scripts mirror the server's statements (the lookup
//! itself, and the card loads; the writes also check the session, which reads take from the
//! server's session cache); values are derived from the contact index exactly as `data`
//! derives them.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::data::{self, FIRST, LAST};
use crate::scenario::Scenario;
use crate::seed::State;

/// Picks a contact index and derives its E.164 number into `:e` (via SQL).
const PICK: &str = r"\set i random(0, :n - 1)
\set j :i - case when :i % 50 = 49 then 1 else 0 end
\set k :j / 4
\set c :j % 4
";

const E164: &str = "(CASE :c WHEN 0 THEN '+447400' || lpad((:k % 1000000)::text, 6, '0') \
WHEN 1 THEN '+3361' || lpad((:k % 10000000)::text, 7, '0') \
WHEN 2 THEN '+49151' || lpad(:k::text, 8, '0') \
ELSE '+55119' || lpad(:k::text, 8, '0') END)";

const SESSION: &str = "SELECT d.id, d.name, d.default_region, d.autolink, d.fallback_digits \
FROM domains d JOIN users u ON u.domain_id = d.id WHERE d.id = :d AND u.id = :u;\n";

/// The card load of `load_cards` (the server's `CARDS_SQL`) for contact `:cid`.
const CARD: &str = "SELECT c.id, c.version, c.display_name, c.description, c.time_zone, c.owner_id, \
c.created_at, c.created_by, c.updated_at, c.updated_by, \
(SELECT name FROM users WHERE id = c.owner_id) AS owner_name, \
(SELECT name FROM users WHERE id = c.created_by) AS created_by_name, \
(SELECT name FROM users WHERE id = c.updated_by) AS updated_by_name, \
COALESCE((SELECT jsonb_agg(l.name ORDER BY l.name) FROM contact_labels cl JOIN labels l ON l.id = cl.label_id WHERE cl.contact_id = c.id), '[]') AS labels, \
COALESCE((SELECT jsonb_agg(jsonb_build_array(a.key, a.value) ORDER BY a.key) FROM contact_attributes a WHERE a.contact_id = c.id), '[]') AS attributes, \
COALESCE((SELECT jsonb_agg(jsonb_build_array(p.id, p.number, p.e164, p.region) ORDER BY p.id) FROM contact_phones p WHERE p.contact_id = c.id), '[]') AS phones, \
COALESCE((SELECT jsonb_agg(jsonb_build_array(e.id, e.address, e.normalized) ORDER BY e.id) FROM contact_emails e WHERE e.contact_id = c.id), '[]') AS emails, \
COALESCE((SELECT jsonb_agg(jsonb_build_array(m.id, m.protocol, m.external_user_id, m.display_name) ORDER BY m.id) FROM contact_messaging_channels m WHERE m.contact_id = c.id), '[]') AS channels \
FROM contacts c WHERE c.domain_id = :d AND c.id = ANY(ARRAY[:cid]);
";

/// The client's recent history (`db::history::HISTORY_SQL`) of contact `{contact}` of domain
/// `:d`, interaction `{exclude}` left out.
fn history(contact: &str, exclude: &str) -> String {
    format!(
        "SELECT (SELECT jsonb_build_object('interaction_id', i.external_id, 'kind', i.kind, \
'direction', i.direction, 'state', i.state, 'queue_id', i.queue_id, 'queue_name', i.queue_name, 'agent_id', i.agent_id, \
'agent_name', (SELECT name FROM users WHERE id = i.agent_id), 'offered_at', i.offered_at, 'closed_at', i.closed_at) \
FROM interactions i WHERE i.domain_id = :d AND i.bound_contact_id = {contact} AND i.state = 'closed' AND i.external_id <> {exclude} \
ORDER BY i.offered_at DESC LIMIT 1) AS last_closed, \
(SELECT count(*) FROM interactions i WHERE i.domain_id = :d AND i.bound_contact_id = {contact} AND i.state = 'closed' \
AND i.offered_at >= now() - interval '30 days' AND i.external_id <> {exclude}) \
+ (SELECT count(*) FROM interactions i WHERE i.bound_contact_id = {contact} AND i.state <> 'closed' AND i.domain_id = :d \
AND i.offered_at >= now() - interval '30 days' AND i.external_id <> {exclude}) AS last_30_days, \
(SELECT coalesce(jsonb_agg(o ORDER BY o.offered_at), '[]') FROM (SELECT i.external_id AS interaction_id, i.kind, i.direction, i.state, \
i.queue_id, i.queue_name, i.agent_id, (SELECT name FROM users WHERE id = i.agent_id) AS agent_name, i.offered_at, i.closed_at \
FROM interactions i WHERE i.bound_contact_id = {contact} AND i.state <> 'closed' AND i.domain_id = :d AND i.external_id <> {exclude} LIMIT 10) o) AS open_now;\n"
    )
}

/// A first offer as the server runs it (`app::interactions::offer`): the session; the offer's
/// context and the identification (the exact and national tiers in one statement, the fallback
/// gated off when the exact number matches; the suffix tier runs only when both found nothing)
/// pipelined; the card of the candidate; then the one
/// statement that writes the interaction and its two events (to nobody, so that watchers never
/// see them), and the announcement the server's hub sends after it commits (on another
/// channel).
fn offer(with_key: bool) -> String {
    let ext = "'pgb-' || :client_id || '-' || :r";
    // The key's lookup (`db::identification::ATTRIBUTE_KEY_SQL`), pipelined with the rest.
    let key = if with_key {
        "SELECT a.contact_id, 0::bigint AS link_id, a.key AS matched, \
(SELECT last_active_at FROM contacts WHERE id = a.contact_id) AS last_active_at FROM (SELECT contact_id, key FROM contact_attributes \
WHERE domain_id = :d AND key = 'crm_id' AND value = 'CRM-' || lpad(:i::text, 7, '0') LIMIT 1000) a;\n"
    } else {
        ""
    };
    let phone = "SELECT p.contact_id, p.id AS link_id, p.e164 AS matched, \
(SELECT last_active_at FROM contacts WHERE id = p.contact_id) AS last_active_at FROM (SELECT contact_id, id, e164 FROM contact_phones";
    let found = format!(
        "(SELECT contact_id FROM contact_phones WHERE domain_id = :d AND e164 = {E164} LIMIT 1)"
    );
    let card =
        CARD.replace("ANY(ARRAY[:cid])", &format!("ANY(ARRAY[{found}])")) + &history(&found, ext);
    let insert = insert_offer(ext, "call", E164, "NULL, NULL, NULL", "'[]'");
    format!(
        "{PICK}\\set r random(1, 1000000000)
{SESSION}\\startpipeline
SELECT (SELECT name FROM users WHERE domain_id = :d AND id = :u) AS agent_name, EXISTS (SELECT 1 FROM interactions WHERE domain_id = :d AND external_id = {ext}) AS known;
WITH exact AS MATERIALIZED (SELECT 1 AS tier, t.* FROM ({phone} WHERE domain_id = :d AND e164 IN ({E164}) LIMIT 1000) p ORDER BY 4 DESC, 1 LIMIT 200) t), \
national AS (SELECT 2 AS tier, t.* FROM ({phone} WHERE domain_id = :d AND national_number = substr({E164}, 4) LIMIT 1000) p ORDER BY 4 DESC, 1 LIMIT 200) t WHERE NOT EXISTS (SELECT 1 FROM exact)) \
SELECT * FROM exact UNION ALL SELECT * FROM national;
{key}\\endpipeline
{card}{insert}{NOTIFY}"
    )
}

/// The one statement of a first offer (`db::interactions::INSERT_OFFER_SQL`), for `kind`,
/// the caller's columns and the candidates' JSON, with two events to nobody; `\gset`s `iid`.
fn insert_offer(ext: &str, kind: &str, caller: &str, chat: &str, candidates: &str) -> String {
    format!(
        "WITH ins AS (INSERT INTO interactions (domain_id, external_id, kind, direction, state, agent_id, queue_id, queue_name, member_id, member_description, variables, caller_number, caller_hidden, caller_e164, chat_protocol, chat_external_user_id, chat_display_name, outcome, outcome_reason, candidates, offered_at, bound_contact_id) \
VALUES (:d, {ext}, '{kind}', 'inbound', 'offered', :u, NULL, NULL, NULL, NULL, '[]', {caller}, false, {caller}, {chat}, 'identified', 'one contact', {candidates}, now(), NULL) ON CONFLICT DO NOTHING RETURNING id, bound_contact_id), \
b AS (INSERT INTO interaction_bindings (domain_id, interaction_id, contact_id, bound_by) SELECT :d, ins.id, ins.bound_contact_id, NULL FROM ins WHERE ins.bound_contact_id IS NOT NULL RETURNING 1), \
t AS (UPDATE contacts SET last_active_at = now() WHERE domain_id = :d AND id = (SELECT bound_contact_id FROM ins) RETURNING 1), \
a AS (INSERT INTO audit_log (domain_id, actor_id, action, contact_id, interaction_id, before, after) SELECT :d, :u, 'interaction.bind', ins.bound_contact_id, {ext}, NULL, NULL FROM ins WHERE ins.bound_contact_id IS NOT NULL RETURNING 1), \
e AS (INSERT INTO events (domain_id, sequence, agent_ids, payload) SELECT :d, (pg_current_xact_id()::text::bigint << 16) + x.ord, '{{}}'::bigint[], x.payload FROM ins, unnest(ARRAY[decode(repeat('00', 300), 'hex'), decode(repeat('00', 300), 'hex')]) WITH ORDINALITY AS x (payload, ord) RETURNING 1) \
SELECT ins.id AS iid, (SELECT count(*) FROM b) + (SELECT count(*) FROM t) + (SELECT count(*) FROM a) + (SELECT count(*) FROM e) AS writes FROM ins \\gset\n"
    )
}

/// The announcement the hub sends after a write commits (on another channel).
const NOTIFY: &str =
    "SELECT count(pg_notify('client_info_events_floor', d::text)) FROM unnest(ARRAY[:d]) AS d;\n";

/// The unit of work's flush (`db::tx::FLUSH_SQL`) of audit records (`actions` on `contacts`)
/// and events (`(agents, concerned contacts)` as array literals, payloads of 300 bytes).
fn flush(ext: &str, audits: &[(&str, &str)], events: &[(&str, &str)]) -> String {
    let list = |items: Vec<String>| items.join(", ");
    let actors = list(audits.iter().map(|_| ":u".to_owned()).collect());
    let actions = list(audits.iter().map(|(a, _)| format!("'{a}'")).collect());
    let contacts = list(audits.iter().map(|(_, c)| (*c).to_owned()).collect());
    let interactions = list(audits.iter().map(|_| ext.to_owned()).collect());
    let json = list(audits.iter().map(|_| "'{}'".to_owned()).collect());
    let agents = list(events.iter().map(|(a, _)| (*a).to_owned()).collect());
    let concerned = list(events.iter().map(|(_, c)| (*c).to_owned()).collect());
    let payloads = list(
        events
            .iter()
            .map(|_| "decode(repeat('00', 300), 'hex')".to_owned())
            .collect(),
    );
    format!(
        "WITH a AS (INSERT INTO audit_log (domain_id, actor_id, action, contact_id, interaction_id, before, after) \
SELECT :d, x.actor, x.action, x.contact, x.interaction, x.before, x.after FROM unnest(ARRAY[{actors}]::bigint[], ARRAY[{actions}]::text[], ARRAY[{contacts}]::bigint[], ARRAY[{interactions}]::text[], ARRAY[{json}]::jsonb[], ARRAY[{json}]::jsonb[]) WITH ORDINALITY AS x (actor, action, contact, interaction, before, after, ord) ORDER BY x.ord RETURNING 1), \
r AS (SELECT x.ord, x.payload, ARRAY(SELECT DISTINCT s.agent FROM (SELECT unnest(x.agents::bigint[]) AS agent UNION ALL SELECT i.agent_id FROM interactions i WHERE i.domain_id = :d AND i.state <> 'closed' AND i.bound_contact_id = ANY (x.contacts::bigint[]) UNION ALL SELECT i.agent_id FROM interactions i WHERE i.domain_id = :d AND i.state <> 'closed' AND interaction_candidate_ids(i.candidates) && x.contacts::bigint[]) s ORDER BY s.agent) AS agents \
FROM unnest(ARRAY[{agents}]::text[], ARRAY[{concerned}]::text[], ARRAY[{payloads}]::bytea[]) WITH ORDINALITY AS x (agents, contacts, payload, ord)), \
e AS (INSERT INTO events (domain_id, sequence, agent_ids, payload) SELECT :d, (pg_current_xact_id()::text::bigint << 16) + r.ord, r.agents, r.payload FROM r WHERE cardinality(r.agents) > 0 RETURNING 1) \
SELECT (SELECT count(*) FROM a) AS audited, (SELECT count(*) FROM e) AS written;\n"
    )
}

/// One create-with-relink cycle as the RPCs run it (`app::interactions`, `app::binding`): offer
/// a chat from a contact's Telegram identity, accept it, then create a contact in it, which
/// moves the identity, binds the interaction and tells the agents concerned.
fn create_relink() -> String {
    let ext = "'pgr-' || :client_id || '-' || :r";
    let holder = "(SELECT contact_id FROM contact_messaging_channels WHERE domain_id = :d AND protocol = 'telegram' AND external_user_id = 'tg-' || :i)";
    let card_old = CARD.replace(":cid", holder);
    let cards = CARD.replace("ARRAY[:cid]", "ARRAY[:newc, :old]");
    let offer = insert_offer(
        ext,
        "chat",
        "NULL",
        "'telegram', 'tg-' || :i, 'Floor'",
        &format!("jsonb_build_array(jsonb_build_object('contact_id', {holder}, 'exact', true))"),
    );
    let audits = [
        ("channel.relink", ":old"),
        ("channel.relink", ":newc"),
        ("contact.create", ":newc"),
        ("interaction.bind", ":newc"),
    ];
    let events = [
        ("'{' || :u || '}'", "'{}'"),
        ("'{' || :u || '}'", "'{}'"),
        ("'{' || :u || '}'", "'{' || :old || ',' || :newc || '}'"),
        ("'{}'", "'{' || :old || '}'"),
    ];
    let flush = flush(ext, &audits, &events);
    let row = "id, external_id, kind, direction, state, agent_id, queue_id, queue_name, member_id, member_description, variables, caller_number, caller_e164, chat_protocol, chat_external_user_id, chat_display_name, outcome, outcome_reason, candidates, bound_contact_id, offered_at, accepted_at, closed_at";
    format!(
        "\\set i random(0, :n / 3 - 1) * 3
\\set r random(1, 1000000000)
{SESSION}\\startpipeline
SELECT (SELECT name FROM users WHERE domain_id = :d AND id = :u) AS agent_name, EXISTS (SELECT 1 FROM interactions WHERE domain_id = :d AND external_id = {ext}) AS known;
SELECT m.contact_id, m.id AS link_id, m.protocol AS matched, (SELECT last_active_at FROM contacts WHERE id = m.contact_id) AS last_active_at FROM (SELECT contact_id, id, protocol FROM contact_messaging_channels WHERE domain_id = :d AND protocol = 'telegram' AND external_user_id = 'tg-' || :i) m;
\\endpipeline
{card_old}{offer}{NOTIFY}{SESSION}WITH u AS (UPDATE interactions SET state = 'accepted', accepted_at = now(), updated_at = now() WHERE domain_id = :d AND external_id = {ext} AND state = 'offered' AND agent_id = :u RETURNING {row}), \
e AS (INSERT INTO events (domain_id, sequence, agent_ids, payload) SELECT :d, (pg_current_xact_id()::text::bigint << 16) + 1, '{{}}'::bigint[], decode(repeat('00', 40), 'hex') FROM u RETURNING 1) SELECT u.* FROM u;
{NOTIFY}{SESSION}BEGIN;
\\startpipeline
SELECT fingerprint, contact_id FROM contact_create_requests WHERE domain_id = :d AND request_id = {ext};
SELECT {row} FROM interactions WHERE domain_id = :d AND external_id = {ext} FOR UPDATE;
\\endpipeline
WITH owner AS (SELECT EXISTS (SELECT 1 FROM users WHERE domain_id = :d AND id = :u) AS ok), n AS (SELECT nextval(pg_get_serial_sequence('contacts', 'id')) AS id FROM owner WHERE owner.ok), \
claim AS (INSERT INTO contact_create_requests (domain_id, request_id, fingerprint, contact_id) SELECT :d, {ext}, 'floor', n.id FROM n ON CONFLICT DO NOTHING RETURNING contact_id), \
c AS (INSERT INTO contacts (id, domain_id, display_name, description, time_zone, owner_id, created_by, updated_by) OVERRIDING SYSTEM VALUE SELECT n.id, :d, 'Floor Contact', '', '', :u, :u, :u FROM n WHERE EXISTS (SELECT 1 FROM claim) RETURNING id) \
SELECT (SELECT ok FROM owner) AS owner_ok, (SELECT id FROM c) AS newc \\gset
SELECT id AS ch, contact_id AS old FROM contact_messaging_channels WHERE domain_id = :d AND protocol = 'telegram' AND external_user_id = 'tg-' || :i FOR UPDATE \\gset
UPDATE contact_messaging_channels SET contact_id = :newc, display_name = 'Floor' WHERE id = :ch;
UPDATE contacts SET version = version + 1, updated_at = now(), updated_by = :u, last_active_at = now() WHERE domain_id = :d AND id = :old;
{cards}WITH b AS (INSERT INTO interaction_bindings (domain_id, interaction_id, contact_id, bound_by) VALUES (:d, :iid, :newc, :u) RETURNING 1), \
i AS (UPDATE interactions SET bound_contact_id = :newc, updated_at = now() WHERE id = :iid RETURNING 1), \
c AS (UPDATE contacts SET last_active_at = now() WHERE domain_id = :d AND id = :newc RETURNING 1) \
SELECT (SELECT count(*) FROM b) + (SELECT count(*) FROM i) + (SELECT count(*) FROM c) AS n;
{flush}END;
{NOTIFY}"
    )
}

/// A search that is not a name alone (server `db::search::build`): the page of hits (21 fetched
/// to know whether more follow) and each hit's card, in one statement.
fn search(branch: &str) -> String {
    let card = CARD
        .trim_end()
        .trim_end_matches(';')
        .replace("c.id = ANY(ARRAY[:cid])", "c.id = agg.id");
    format!(
        "{PICK}SELECT agg.sort_key, agg.tiebreak, agg.found_by, card.* FROM (\
WITH hits (id, cond, sort_key, field, exact, value) AS ({branch}), \
agg AS (SELECT id, min(sort_key) AS sort_key, ''::text AS tiebreak, count(DISTINCT cond) AS n, \
jsonb_agg(jsonb_build_object('f', field, 'e', exact, 'v', value) ORDER BY cond, sort_key) AS found_by \
FROM hits GROUP BY id) \
SELECT agg.id, agg.sort_key, agg.tiebreak, agg.found_by FROM agg WHERE agg.n >= 1 \
ORDER BY agg.sort_key, agg.id LIMIT 21) agg \
CROSS JOIN LATERAL ({card}) card ORDER BY agg.sort_key, agg.id;\n"
    )
}

/// The bands of a name search (server `db::search`), in the order the server runs them, and
/// its vocabulary lookup and first typo term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameBand {
    Exact,
    FirstWord,
    LaterWord,
    Prefix,
    Word,
    Substring,
    /// The lookup of the query words' deletion variants (`contact_name_variants`).
    Lookup,
    /// The names holding one typo term (`:word`, the word the typo was made from: the
    /// server picks it after checking the distances of the lookup's words).
    Term,
}

/// One statement of a name search: its band, whether the query is one word (the bands'
/// SQL differs), and a condition on the script's variables that must hold for it to run (a
/// one-time filter: the surname scenario's O'Brien has other bands than its other names).
#[derive(Debug, Clone)]
struct Step {
    band: NameBand,
    one_word: bool,
    guard: String,
}

fn steps(bands: &[NameBand], one_word: bool, guard: &str) -> Vec<Step> {
    bands
        .iter()
        .map(|band| Step {
            band: *band,
            one_word,
            guard: guard.to_owned(),
        })
        .collect()
}

/// The statements of a name search for the query `pick` (an SQL expression of the script's
/// variables) that runs `bands` until the last fills the page of 20 (21 fetched to know
/// whether more follow), then the cards of the 20. The first statement also returns the
/// query (and `word`, the other columns of `pick_word`) as variables, so that the next ones
/// bind it as the server does (`lower(immutable_unaccent($n))`), instead of computing it from
/// an array literal at every row they filter.
fn name_search(pick: &str, pick_word: Option<&str>, bands: &[Step]) -> String {
    let bound = "lower(immutable_unaccent(:q))".to_owned();
    let first = format!("lower(immutable_unaccent({pick}))");
    let mut picked = format!(", {pick} AS q");
    if let Some(w) = pick_word {
        picked += &format!(", {w} AS word");
    }
    let mut script = String::from(PICK);
    for (k, step) in bands.iter().enumerate() {
        let q = if k == 0 { &first } else { &bound };
        let extra = if k == 0 { picked.as_str() } else { "" };
        script += &band_sql(q, step, extra);
    }
    script
        + &CARD.replace(
            "c.id = ANY(ARRAY[:cid])",
            "c.id = ANY((string_to_array(:ids, ','))[1:20]::bigint[])",
        )
}

/// One statement of [`name_search`] for the query `q` (SQL), with `extra` columns.
fn band_sql(q: &str, step: &Step, extra: &str) -> String {
    let found = format!(
        "jsonb_build_array(jsonb_build_object('f', 'name', 'e', c.name_search = {q}, 'v', c.display_name))"
    );
    let first_word =
        format!("(c.name_search COLLATE \"C\" > {q} AND c.name_search COLLATE \"C\" < {q} || '0')");
    let page = |inner: String, order: &str| {
        format!(
            "SELECT coalesce(string_agg(id::text, ','), '') AS ids{extra} FROM (SELECT agg.id FROM ({inner}) agg \
             ORDER BY {order} LIMIT 21) page \\gset\n"
        )
    };
    let g = if step.guard.is_empty() {
        String::new()
    } else {
        format!(" AND {}", step.guard)
    };
    match step.band {
        NameBand::Exact => page(
            format!(
                "SELECT c.id, 0::bigint AS sort_key, ''::text AS tiebreak, {found} AS found_by \
                     FROM contacts c WHERE c.domain_id = :d AND c.name_search COLLATE \"C\" = {q}{g}"
            ),
            "agg.id",
        ),
        NameBand::FirstWord => page(
            format!(
                "SELECT c.id, 1000::bigint AS sort_key, c.name_search AS tiebreak, {found} AS found_by \
                     FROM contacts c WHERE c.domain_id = :d AND {first_word}{g}"
            ),
            "agg.tiebreak COLLATE \"C\", agg.id",
        ),
        NameBand::LaterWord => page(
            format!(
                "SELECT c.id, 2000::bigint AS sort_key, w.word::text AS tiebreak, {found} AS found_by \
                     FROM contact_name_words w JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
                     WHERE w.domain_id = :d AND w.word = {q} AND w.later \
                     AND c.name_search <> {q} AND NOT {first_word}{g}"
            ),
            "agg.id",
        ),
        NameBand::Prefix => {
            let not_later = if step.one_word {
                format!(" AND NOT ({q} = ANY ((name_words(c.name_search))[2:]))")
            } else {
                String::new()
            };
            page(
                format!(
                    "SELECT c.id, 3000::bigint AS sort_key, c.name_search AS tiebreak, {found} AS found_by \
                         FROM contacts c WHERE c.domain_id = :d AND c.name_search COLLATE \"C\" >= {q} || '0' \
                         AND c.name_search COLLATE \"C\" < {q} || chr(1114111){not_later}{g}"
                ),
                "agg.tiebreak COLLATE \"C\", agg.id",
            )
        }
        NameBand::Word => {
            let from = if step.one_word { ">" } else { ">=" };
            page(
                format!(
                    "SELECT c.id, 4000::bigint AS sort_key, w.word::text AS tiebreak, {found} AS found_by \
                         FROM contact_name_words w JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
                         WHERE w.domain_id = :d AND w.word {from} (name_words({q}))[1] \
                         AND w.word < CASE WHEN {q} ~ '[\\x01-\\x2f]' THEN (name_words({q}))[1] || chr(1) ELSE {q} || chr(1114111) END \
                         AND w.later AND NOT starts_with(c.name_search, {q}) \
                         AND name_word_starting(c.name_search, {q}) >= w.word{g}"
                ),
                "agg.tiebreak COLLATE \"C\", agg.id",
            )
        }
        NameBand::Substring => page(
            format!(
                "SELECT c.id, (5000 + 999 - floor(word_similarity({q}, c.name_search) * 999))::bigint AS sort_key, \
                     c.name_search AS tiebreak, {found} AS found_by FROM contacts c WHERE c.domain_id = :d \
                     AND c.name_search LIKE '%' || {q} || '%' AND NOT starts_with(c.name_search, {q}) \
                     AND NOT (c.name_search ~ (SELECT name_word_pattern({q})) \
                     AND name_word_starting(c.name_search, {q}) IS NOT NULL){g}"
            ),
            "agg.sort_key, agg.tiebreak COLLATE \"C\", agg.id",
        ),
        NameBand::Term => page(
            format!(
                "SELECT c.id, 8001::bigint AS sort_key, w.word::text AS tiebreak, \
                     jsonb_build_array(jsonb_build_object('f', 'name', 'e', false, 'v', c.display_name, 'm', \
                       jsonb_build_array(jsonb_build_array((name_words({q}))[1], \
                       array_position(name_words(c.name_search), w.word::text), 2, \
                       cardinality(name_words(c.name_search)), w.word::text)))) AS found_by \
                     FROM contact_name_words w JOIN contacts c ON c.domain_id = w.domain_id AND c.id = w.contact_id \
                     WHERE w.domain_id = :d AND w.word = lower(immutable_unaccent(:word)) AND c.name_search NOT LIKE '%' || {q} || '%' \
                     AND NOT (name_words(c.name_search) && string_to_array('', ' ')){g}"
            ),
            "agg.id",
        ),
        NameBand::Lookup => format!(
            "SELECT count(*) AS found{extra} FROM (SELECT q.ord AS qi, q.word AS qword, coalesce(v.word, '') AS word \
             FROM unnest(name_words({q})) WITH ORDINALITY AS q (word, ord) \
             LEFT JOIN LATERAL (SELECT DISTINCT x.word::text AS word FROM contact_name_variants x \
             WHERE x.domain_id = :d AND x.variant = ANY (name_word_deletions(q.word, name_query_deletions(q.word)))) v \
             ON true ORDER BY 1, 3) found \\gset\n"
        ),
    }
}

/// The pgbench script of a scenario, if it has one.
pub fn script(scenario: Scenario) -> Option<String> {
    let names = |list: &[&str]| {
        list.iter()
            .map(|n| format!("'{}'", n.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let body = match scenario {
        Scenario::SearchDestination => search(&format!(
            "SELECT contact_id, 0, 0::bigint, 'phone', true, e164 FROM contact_phones \
             WHERE domain_id = :d AND e164 = {E164}"
        )),
        Scenario::SearchAttribute => search(
            "SELECT contact_id, 0, 0::bigint, 'attribute', true, key || '=' || value \
             FROM contact_attributes WHERE domain_id = :d AND key = 'crm_id' \
             AND value = 'CRM-' || lpad(:i::text, 7, '0')",
        ),
        Scenario::SearchName => name_search(
            &format!(
                "(ARRAY[{}])[:i % 24 + 1] || ' ' || (ARRAY[{}])[(:i / 24) % 24 + 1]",
                names(&FIRST),
                names(&LAST)
            ),
            None,
            &steps(&[NameBand::Exact], false, ""),
        ),
        Scenario::SearchFirstName => name_search(
            &format!("(ARRAY[{}])[:i % 24 + 1]", names(&FIRST)),
            None,
            &steps(&[NameBand::Exact, NameBand::FirstWord], true, ""),
        ),
        Scenario::SearchSurname => {
            // A one-word surname fills its page in the later-word band; O'Brien, two words,
            // in the word band.
            let obrien = LAST.iter().position(|w| w.contains('\'')).unwrap_or(0);
            let mut bands = steps(&[NameBand::Exact, NameBand::FirstWord], true, "");
            bands.extend(steps(
                &[NameBand::LaterWord],
                true,
                &format!(":i % 24 <> {obrien}"),
            ));
            bands.extend(steps(
                &[NameBand::Prefix, NameBand::Word],
                false,
                &format!(":i % 24 = {obrien}"),
            ));
            name_search(&format!("(ARRAY[{}])[:i % 24 + 1]", names(&LAST)), None, &bands)
        }
        Scenario::SearchTypo => {
            let n = data::name_typos();
            let (typos, words): (Vec<String>, Vec<&str>) = (0..n).map(data::name_typo).unzip();
            let typos: Vec<&str> = typos.iter().map(String::as_str).collect();
            name_search(
                &format!("(ARRAY[{}])[:i % {n} + 1]", names(&typos)),
                Some(&format!("(ARRAY[{}])[:i % {n} + 1]", names(&words))),
                &steps(
                    &[
                        NameBand::Exact,
                        NameBand::FirstWord,
                        NameBand::LaterWord,
                        NameBand::Prefix,
                        NameBand::Word,
                        NameBand::Substring,
                        NameBand::Lookup,
                        NameBand::Term,
                    ],
                    true,
                    "",
                ),
            )
        }
        Scenario::SearchNothing => {
            let nobody: Vec<String> = (0..4096).map(data::nobody).collect();
            let nobody: Vec<&str> = nobody.iter().map(String::as_str).collect();
            name_search(
                &format!("(ARRAY[{}])[:i % 4096 + 1]", names(&nobody)),
                None,
                &steps(
                    &[
                        NameBand::Exact,
                        NameBand::FirstWord,
                        NameBand::LaterWord,
                        NameBand::Prefix,
                        NameBand::Word,
                        NameBand::Substring,
                        NameBand::Lookup,
                    ],
                    true,
                    "",
                ),
            )
        }
        // The words band of a full name with typos is checked word by word in the server
        // (the distances of the lookup's words) before its statement: no SQL floor.
        Scenario::SearchNameTypo => return None,
        Scenario::Offer => offer(false),
        Scenario::OfferKeys => offer(true),
        // GetClientInfo of one of the interactions the run offered (`ci-<stamp>-<k>`, set by
        // the caller): the interaction, the candidate's card (the session and the agent's name
        // come from the server's session cache).
        Scenario::ClientInfo => format!(
            "\\set k random(0, :offered - 1)
SELECT i.*, coalesce(i.bound_contact_id, (i.candidates->0->>'contact_id')::bigint, 0) AS cid FROM interactions i WHERE i.domain_id = :d AND i.external_id = 'ci-' || :stamp || '-' || :k \\gset
{CARD}{}",
            history(":cid", "'ci-' || :stamp || '-' || :k")
        ),
        Scenario::CreateRelink => create_relink(),
        Scenario::Watch | Scenario::Changes => return None,
    };
    Some(body)
}

/// pgbench sends variables as untyped text: give every numeric one in SQL a type.
pub(crate) fn typed(script: &str) -> String {
    const VARS: [&str; 13] = [
        "client_id",
        "cid",
        "d",
        "u",
        "iid",
        "i",
        "j",
        "k",
        "c",
        "r",
        "newc",
        "old",
        "ch",
    ];
    script
        .lines()
        .map(|line| {
            if line.starts_with('\\') {
                return line.to_owned();
            }
            let mut out = String::with_capacity(line.len() + 32);
            let mut rest = line;
            while let Some(pos) = rest.find(':') {
                out.push_str(&rest[..pos]);
                let after = &rest[pos + 1..];
                let prev_colon = out.ends_with(':');
                let var = VARS.iter().find(|v| {
                    after.starts_with(*v)
                        && !after[v.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                match var {
                    Some(v) if !prev_colon => {
                        out.push_str(&format!("(:{v})::bigint"));
                        rest = &after[v.len()..];
                    }
                    _ => {
                        out.push(':');
                        rest = after;
                    }
                }
            }
            out.push_str(rest);
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The session settings of the server's connections (server `db::build_pool_setting`), which
/// the floor's connections take too: the same SQL, planned and run the same way.
pub const SESSION_SETTINGS: &str = "SET jit = off; SET max_parallel_workers_per_gather = 0;";

/// [`SESSION_SETTINGS`] as libpq's `PGOPTIONS`, for pgbench.
const PGOPTIONS: &str = "-c jit=off -c max_parallel_workers_per_gather=0";

/// Runs pgbench with `script` and returns its transactions per second, and the latency of its
/// transactions in microseconds when its per-transaction log could be read.
pub fn pgbench(
    state: &State,
    script: &str,
    vars: &[(&str, String)],
    concurrency: usize,
    duration: Duration,
) -> Result<(f64, Option<Histogram<u64>>), String> {
    let path = std::env::temp_dir().join(format!("client-info-floor-{}.sql", std::process::id()));
    std::fs::write(&path, typed(script)).map_err(|e| e.to_string())?;
    let log_dir = std::env::temp_dir().join(format!("client-info-floor-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
    eprintln!("running pgbench for {} s ...", duration.as_secs());
    let jobs = concurrency.clamp(1, 2);
    let out = std::process::Command::new("pgbench")
        .env("PGOPTIONS", PGOPTIONS)
        .args(["-n", "-M", "prepared"])
        .args(["-c", &concurrency.to_string(), "-j", &jobs.to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        // A tenth of the transactions logged, so that the log costs pgbench next to nothing.
        .args(["-l", "--sampling-rate=0.1"])
        .arg(format!("--log-prefix={}", log_dir.join("log").display()))
        .args(["-D", &format!("d={}", state.domain)])
        .args(["-D", &format!("u={}", state.crm.id)])
        .args(["-D", &format!("n={}", state.contacts.max(1))])
        .args(
            vars.iter()
                .flat_map(|(k, v)| ["-D".to_owned(), format!("{k}={v}")]),
        )
        .arg("-f")
        .arg(&path)
        .arg(&state.database_url)
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let _ = std::fs::remove_file(&path);
    let latency = read_logs(&log_dir);
    let _ = std::fs::remove_dir_all(&log_dir);
    if script.contains("'pgb-'") || script.contains("'pgr-'") {
        // The replayed offers stay open; close them as the RPC runs close theirs.
        let closed = std::process::Command::new("psql")
            .args(["-q", "-c"])
            .arg(
                "UPDATE interactions SET state = 'closed', closed_at = now() \
                 WHERE (external_id LIKE 'pgb-%' OR external_id LIKE 'pgr-%') \
                 AND state <> 'closed'",
            )
            .arg(&state.database_url)
            .output();
        if let Err(e) = closed {
            eprintln!("could not close the replayed offers: {e}");
        }
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    match tps {
        Some(t) => Ok((t, latency)),
        None => Err(format!(
            "pgbench gave no tps: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// The latencies of pgbench's per-transaction logs in `dir` (one file per thread; the third
/// field of each line is the transaction's time in microseconds); `None` when there are none.
fn read_logs(dir: &std::path::Path) -> Option<Histogram<u64>> {
    let mut h = crate::engine::histogram();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        record_log(&mut h, &text);
    }
    (!h.is_empty()).then_some(h)
}

/// Records each line's transaction time (`client_id transaction_no time script_no ...`).
fn record_log(h: &mut Histogram<u64>, text: &str) {
    for line in text.lines() {
        if let Some(us) = line
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse::<u64>().ok())
        {
            h.saturating_record(us.max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_logs_give_the_third_field_as_latency() {
        let mut h = crate::engine::histogram();
        record_log(
            &mut h,
            "0 1 1520 0 1764636000 123456\n1 1 2000 0 1764636000 223456\nbad line\n",
        );
        assert_eq!(h.len(), 2);
        assert_eq!((h.min(), h.max()), (1520, 2000));
    }
}
