//! The floor: the SQL a scenario's RPC runs, replayed by pgbench with prepared statements at the
//! same concurrency and duration. The scripts mirror the server's statements (session check,
//! the lookup itself, and the card loads); values are derived from the contact index exactly as
//! `data` derives them.

use std::time::Duration;

use crate::data::{FIRST, LAST};
use crate::run::Scenario;
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

fn search(branch: &str) -> String {
    format!(
        "{PICK}{SESSION}WITH hits (id, cond, sort_key, field, exact, value) AS ({branch}), \
agg AS (SELECT id, min(sort_key) AS sort_key, count(DISTINCT cond) AS n, \
jsonb_agg(jsonb_build_object('f', field, 'e', exact, 'v', value) ORDER BY cond, sort_key) AS found_by \
FROM hits GROUP BY id) \
SELECT agg.id AS cid FROM agg WHERE agg.n >= 1 ORDER BY agg.sort_key, agg.id LIMIT 1 \\gset\n{CARD}"
    )
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
        Scenario::SearchName => {
            let q = format!(
                "lower(immutable_unaccent((ARRAY[{}])[:i % 24 + 1] || ' ' || (ARRAY[{}])[(:i / 24) % 24 + 1]))",
                names(&FIRST),
                names(&LAST)
            );
            // A name alone runs band by band (server `db::search`); a full name that many
            // contacts share fills its page from the exact band: the page of 20 (21 fetched to
            // know whether more follow) and the cards of the 20.
            format!(
                "{PICK}{SESSION}SELECT string_agg(id::text, ',') AS ids FROM (SELECT agg.id FROM \
                 (SELECT id, (999 - floor(word_similarity({q}, name_search) * 999))::bigint AS sort_key, \
                 jsonb_build_array(jsonb_build_object('f', 'name', 'e', name_search = {q}, 'v', display_name)) AS found_by \
                 FROM contacts WHERE domain_id = :d AND name_search = {q}) agg ORDER BY agg.id LIMIT 21) page \\gset\n{}",
                CARD.replace(
                    "c.id = ANY(ARRAY[:cid])",
                    "c.id = ANY((string_to_array(:ids, ','))[1:20]::bigint[])"
                )
            )
        }
        Scenario::Offer => format!(
            "{PICK}\\set r random(1, 1000000000)
{SESSION}SELECT EXISTS (SELECT 1 FROM users WHERE domain_id = :d AND id = :u);
BEGIN;
SELECT id FROM interactions WHERE domain_id = :d AND external_id = 'pgb-' || :client_id || '-' || :r FOR UPDATE;
SELECT p.contact_id AS cid FROM (SELECT contact_id, id, e164 FROM contact_phones WHERE domain_id = :d AND e164 = ANY(ARRAY[{E164}]) LIMIT 1000) p LIMIT 1 \\gset
INSERT INTO interactions (domain_id, external_id, kind, direction, state, agent_id, variables, caller_number, caller_e164, outcome, outcome_reason, candidates, offered_at) VALUES (:d, 'pgb-' || :client_id || '-' || :r, 'call', 'inbound', 'offered', :u, '[]', {E164}, {E164}, 'identified', 'one contact: exact number', '[]', now()) ON CONFLICT DO NOTHING RETURNING id;
SELECT id FROM interactions WHERE domain_id = :d AND external_id = 'pgb-' || :client_id || '-' || :r;
{CARD}SELECT id, name FROM users WHERE domain_id = :d AND id = ANY(ARRAY[:u]);
WITH c AS (INSERT INTO domain_event_counters (domain_id, last_sequence) VALUES (:d, 2) ON CONFLICT (domain_id) DO UPDATE SET last_sequence = domain_event_counters.last_sequence + EXCLUDED.last_sequence RETURNING last_sequence), e AS (INSERT INTO events (domain_id, sequence, agent_ids, payload) SELECT :d, c.last_sequence - 2 + x.ord, '{{}}'::bigint[], decode(repeat('00', 300), 'hex') FROM c, generate_series(1, 2) WITH ORDINALITY AS x (g, ord)) SELECT c.last_sequence, pg_notify('client_info_events_floor', :d || ':' || c.last_sequence)::text FROM c;
END;
"
        ),
        Scenario::ClientInfo | Scenario::CreateRelink | Scenario::Watch => return None,
    };
    Some(body)
}

/// pgbench sends variables as untyped text: give every numeric one in SQL a type.
fn typed(script: &str) -> String {
    const VARS: [&str; 9] = ["client_id", "cid", "d", "u", "i", "j", "k", "c", "r"];
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

/// Runs pgbench with `script` and returns its transactions per second.
pub fn pgbench(
    state: &State,
    script: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<f64, String> {
    let path = std::env::temp_dir().join(format!("client-info-floor-{}.sql", std::process::id()));
    std::fs::write(&path, typed(script)).map_err(|e| e.to_string())?;
    eprintln!("running pgbench for {} s ...", duration.as_secs());
    let jobs = concurrency.clamp(1, 2);
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared"])
        .args(["-c", &concurrency.to_string(), "-j", &jobs.to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .args(["-D", &format!("d={}", state.domain)])
        .args(["-D", &format!("u={}", state.crm.id)])
        .args(["-D", &format!("n={}", state.contacts.max(1))])
        .arg("-f")
        .arg(&path)
        .arg(&state.database_url)
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let _ = std::fs::remove_file(&path);
    if script.contains("'pgb-'") {
        // The replayed offers stay open; close them as the RPC runs close theirs.
        let closed = std::process::Command::new("psql")
            .args(["-q", "-c"])
            .arg(
                "UPDATE interactions SET state = 'closed', closed_at = now() \
                 WHERE external_id LIKE 'pgb-%' AND state <> 'closed'",
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
        Some(t) => Ok(t),
        None => Err(format!(
            "pgbench gave no tps: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}
