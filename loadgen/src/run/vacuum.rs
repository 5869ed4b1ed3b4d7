//! Housekeeping between measurements: a `VACUUM ANALYZE` when the database does not vacuum
//! itself, so that a run does not measure the dead rows of the runs before it.
//!
//! A leaf of the run: imports only the state file's `State` (`crate::seed`).

use std::time::Instant;

use crate::seed::State;

/// When the database does not vacuum itself (autovacuum off, as on the CI machines), vacuums
/// and analyzes it before measuring, as autovacuum would have between runs: otherwise each run
/// measures the dead rows and unset visibility maps the previous ones left.
pub(super) fn vacuum_if_needed(state: &State) {
    let psql = |sql: &str| psql(state, sql);
    match psql("SHOW autovacuum") {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "off" => {
            let started = Instant::now();
            match psql("VACUUM ANALYZE") {
                Ok(out) if out.status.success() => eprintln!(
                    "autovacuum is off: ran VACUUM ANALYZE in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
                Ok(out) => eprintln!(
                    "VACUUM ANALYZE failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => eprintln!("cannot run psql: {e}"),
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("cannot run psql to check autovacuum: {e}"),
    }
}

/// Runs one statement with `psql` against the state's database.
fn psql(state: &State, sql: &str) -> std::io::Result<std::process::Output> {
    std::process::Command::new("psql")
        .args(["-Atq", "-c", sql])
        .arg(&state.database_url)
        .output()
}

/// Whether the database server runs with autovacuum off (`None` when psql cannot tell).
pub(super) fn autovacuum_off(state: &State) -> Option<bool> {
    let out = psql(state, "SHOW autovacuum").ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim() == "off")
}
