//! The open-loop floor: a read scenario's pgbench script (`floor.rs`) replayed by the harness
//! itself, straight to PostgreSQL, on the same fixed schedule as the RPCs.
//!
//! pgbench cannot give this floor: its `-R` draws Poisson arrivals, burstier than the fixed
//! schedule the RPCs are sent on, so its percentiles would not compare. Here each request
//! `k` of the schedule ([`engine::open_loop`], the same code the RPCs use) takes a connection
//! (waiting for one when all are busy, as the server waits for its pool) and runs the
//! script's statements in order as prepared statements, timed from its intended start.
//!
//! The script is read as pgbench reads it, for what the read scripts use: `\set` lines of the
//! two picks below (computed in Rust, the same arithmetic), one SQL statement per line, `:var`
//! placeholders bound as parameters (typed as PostgreSQL infers them), and a trailing
//! `\gset`, which keeps the row's columns as variables for the statements after it. The
//! scripts of the writes (transactions, `NOTIFY`) are not replayed: they have no open-loop
//! floor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use tokio_postgres::types::{ToSql, Type};

use crate::engine::{self, Counters, OpenLoop, Recorder};
use crate::seed::State;

/// The `\set` lines of `floor::PICK`: a contact index and its number's parts.
const PICK_LINES: [&str; 4] = [
    r"\set i random(0, :n - 1)",
    r"\set j :i - case when :i % 50 = 49 then 1 else 0 end",
    r"\set k :j / 4",
    r"\set c :j % 4",
];
/// The `\set` line of GetClientInfo's script: one of the offered interactions.
const OFFERED_LINE: &str = r"\set k random(0, :offered - 1)";

/// One statement of a script: its SQL with `$n` placeholders, the variable behind each, and
/// whether its row's columns become variables.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    sql: String,
    params: Vec<String>,
    gset: bool,
}

/// A script as the replay runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Which of the two picks its `\set` lines are.
    pick: Pick,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pick {
    Contact,
    Offered,
    None,
}

/// Reads `script`; an error names what the replay does not understand.
pub fn parse(script: &str) -> Result<Script, String> {
    let mut sets = Vec::new();
    let mut steps = Vec::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('\\') {
            sets.push(line);
            continue;
        }
        let (sql, gset) = match line.strip_suffix(r"\gset") {
            Some(sql) => (sql.trim_end(), true),
            None => (line, false),
        };
        let sql = sql.trim_end_matches(';');
        if sql.starts_with("BEGIN") || sql.starts_with("END") || sql.contains("pg_notify") {
            return Err("a write's script (a transaction) has no open-loop replay".into());
        }
        let (sql, params) = placeholders(sql);
        steps.push(Step { sql, params, gset });
    }
    let pick = if sets.is_empty() {
        Pick::None
    } else if sets == PICK_LINES {
        Pick::Contact
    } else if sets == [OFFERED_LINE] {
        Pick::Offered
    } else {
        return Err(format!(
            "the replay does not know these \\set lines: {sets:?}"
        ));
    };
    if steps.is_empty() {
        return Err("the script has no statement".into());
    }
    Ok(Script { pick, steps })
}

/// `sql` with each `:name` outside string literals and casts turned into `$n` (one per
/// distinct name), and the names in order.
fn placeholders(sql: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(sql.len());
    let mut names: Vec<String> = Vec::new();
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((i, ch)) = chars.next() {
        if ch == '\'' {
            quoted = !quoted;
            out.push(ch);
            continue;
        }
        if quoted || ch != ':' {
            out.push(ch);
            continue;
        }
        match chars.peek() {
            Some((_, ':')) => {
                // A cast: `::type`.
                out.push_str("::");
                chars.next();
            }
            Some((_, c)) if c.is_ascii_alphabetic() || *c == '_' => {
                let rest = &sql[i + 1..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let name = &rest[..len];
                let n = match names.iter().position(|x| x == name) {
                    Some(p) => p + 1,
                    None => {
                        names.push(name.to_owned());
                        names.len()
                    }
                };
                out.push_str(&format!("${n}"));
                for _ in 0..len {
                    chars.next();
                }
            }
            _ => out.push(ch),
        }
    }
    (out, names)
}

/// The variables of one request: the script's pick, then `base` (the `-D` ones).
fn pick(script: &Script, base: &HashMap<String, String>) -> HashMap<String, String> {
    let mut vars = base.clone();
    let int = |vars: &HashMap<String, String>, k: &str| {
        vars.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(1)
    };
    let mut rng = rand::rng();
    match script.pick {
        Pick::Contact => {
            let i = rng.random_range(0..int(&vars, "n").max(1));
            let j = i - i64::from(i % 50 == 49);
            vars.insert("i".into(), i.to_string());
            vars.insert("j".into(), j.to_string());
            vars.insert("k".into(), (j / 4).to_string());
            vars.insert("c".into(), (j % 4).to_string());
        }
        Pick::Offered => {
            let k = rng.random_range(0..int(&vars, "offered").max(1));
            vars.insert("k".into(), k.to_string());
        }
        Pick::None => {}
    }
    vars
}

/// A parameter value of the type PostgreSQL inferred for it.
fn value(ty: &Type, text: &str) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    let bad = || format!("{text:?} is not a {ty}");
    Ok(match *ty {
        Type::INT8 => Box::new(text.parse::<i64>().map_err(|_| bad())?),
        Type::INT4 => Box::new(text.parse::<i32>().map_err(|_| bad())?),
        Type::INT2 => Box::new(text.parse::<i16>().map_err(|_| bad())?),
        _ => Box::new(text.to_owned()),
    })
}

/// One connection and its prepared statements (one per step).
struct Conn {
    client: tokio_postgres::Client,
    statements: Vec<tokio_postgres::Statement>,
}

/// Runs one request of `script` on `conn`.
async fn run_once(
    conn: &Conn,
    script: &Script,
    base: &HashMap<String, String>,
) -> Result<(), String> {
    let mut vars = pick(script, base);
    for (step, statement) in script.steps.iter().zip(&conn.statements) {
        let mut values = Vec::with_capacity(step.params.len());
        for (name, ty) in step.params.iter().zip(statement.params()) {
            let text = vars
                .get(name)
                .ok_or_else(|| format!("the script uses :{name}, which has no value"))?;
            values.push(value(ty, text)?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = conn.client.query(statement, &refs).await.map_err(|e| {
            e.as_db_error()
                .map_or(e.to_string(), |d| d.message().to_owned())
        })?;
        if step.gset {
            let row = rows
                .first()
                .ok_or("a \\gset statement returned no row".to_owned())?;
            for (i, column) in row.columns().iter().enumerate() {
                let text = match *column.type_() {
                    Type::INT8 => row
                        .try_get::<_, Option<i64>>(i)
                        .ok()
                        .flatten()
                        .map(|v| v.to_string()),
                    Type::INT4 => row
                        .try_get::<_, Option<i32>>(i)
                        .ok()
                        .flatten()
                        .map(|v| v.to_string()),
                    Type::TEXT | Type::VARCHAR => {
                        row.try_get::<_, Option<String>>(i).ok().flatten()
                    }
                    _ => None,
                };
                if let Some(text) = text {
                    vars.insert(column.name().to_owned(), text);
                }
            }
        }
    }
    Ok(())
}

/// Opens `connections` connections to the state's database and prepares `script` on each.
async fn connect(state: &State, script: &Script, connections: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (client, connection) =
            tokio_postgres::connect(&state.database_url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", state.database_url))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(crate::floor::SESSION_SETTINGS)
            .await
            .map_err(|e| format!("cannot set the server's session settings: {e}"))?;
        let mut statements = Vec::with_capacity(script.steps.len());
        for step in &script.steps {
            statements.push(
                client
                    .prepare(&step.sql)
                    .await
                    .map_err(|e| format!("cannot prepare the floor's SQL: {e}"))?,
            );
        }
        conns.push(Conn { client, statements });
    }
    Ok(conns)
}

/// Replays `script` at `load.rate` for `load.duration` over `connections` connections, after
/// `warmup` at the same rate (not recorded); what it measured.
pub async fn open_loop(
    state: &State,
    script: &Script,
    vars: &[(&str, String)],
    connections: usize,
    load: OpenLoop,
    warmup: Option<Duration>,
) -> Result<(Recorder, std::time::Instant, std::time::Instant), String> {
    let mut base: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    base.insert("d".into(), state.domain.to_string());
    base.insert("u".into(), state.crm.id.to_string());
    base.insert("n".into(), state.contacts.max(1).to_string());
    let free = Arc::new(Mutex::new(
        connect(state, script, connections.max(1)).await?,
    ));
    let slots = Arc::new(tokio::sync::Semaphore::new(connections.max(1)));
    let shared = Arc::new((script.clone(), base));
    let phase = |duration: Duration| {
        let (free, slots, shared) = (free.clone(), slots.clone(), shared.clone());
        engine::open_loop(
            OpenLoop { duration, ..load },
            Arc::new(Counters::default()),
            move |_| {
                let (free, slots, shared) = (free.clone(), slots.clone(), shared.clone());
                async move {
                    let _permit = slots.acquire().await.map_err(|e| e.to_string())?;
                    let conn = free
                        .lock()
                        .map_err(|e| e.to_string())?
                        .pop()
                        .ok_or("no free connection")?;
                    let result = run_once(&conn, &shared.0, &shared.1).await;
                    if let Ok(mut f) = free.lock() {
                        f.push(conn);
                    }
                    result
                }
            },
        )
    };
    if let Some(w) = warmup {
        phase(w).await;
    }
    Ok(phase(load.duration).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_skip_casts_and_literals() {
        let (sql, names) = placeholders(
            "SELECT (:d)::bigint, ':x', 'ci-' || :stamp || '-' || :k, :d, :key::bigint",
        );
        assert_eq!(
            sql,
            "SELECT ($1)::bigint, ':x', 'ci-' || $2 || '-' || $3, $1, $4::bigint"
        );
        assert_eq!(names, ["d", "stamp", "k", "key"]);
    }

    #[test]
    fn every_read_script_is_understood_and_no_write_is() {
        use crate::scenario::Scenario;
        for scenario in [
            Scenario::ClientInfo,
            Scenario::SearchDestination,
            Scenario::SearchAttribute,
            Scenario::SearchName,
            Scenario::SearchFirstName,
            Scenario::SearchSurname,
            Scenario::SearchTypo,
            Scenario::SearchNothing,
        ] {
            let script = crate::floor::script(scenario).expect("a script");
            let parsed = parse(&crate::floor::typed(&script))
                .unwrap_or_else(|e| panic!("{scenario:?}: {e}"));
            assert!(!parsed.steps.is_empty());
        }
        for scenario in [Scenario::Offer, Scenario::OfferKeys, Scenario::CreateRelink] {
            let script = crate::floor::script(scenario).expect("a script");
            assert!(
                parse(&crate::floor::typed(&script)).is_err(),
                "{scenario:?}"
            );
        }
    }

    #[test]
    fn the_contact_pick_is_pgbench_arithmetic() {
        let script = Script {
            pick: Pick::Contact,
            steps: Vec::new(),
        };
        let base = HashMap::from([("n".to_owned(), "1000".to_owned())]);
        for _ in 0..200 {
            let v = pick(&script, &base);
            let i: i64 = v["i"].parse().expect("i");
            let j: i64 = v["j"].parse().expect("j");
            assert_eq!(j, if i % 50 == 49 { i - 1 } else { i });
            assert_eq!(v["k"], (j / 4).to_string());
            assert_eq!(v["c"], (j % 4).to_string());
            assert!((0..1000).contains(&i));
        }
    }
}
