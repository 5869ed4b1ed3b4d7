//! Commit-to-delivery latency from PostgreSQL's own commit timestamps.
//!
//! An event's `occurred_at` is the clock time of its write, taken inside the writing statement:
//! latency measured from it includes the rest of that statement, the `COMMIT` round trip and its
//! WAL flush, which happen before any reader can see the event. When the database records commit
//! timestamps (`track_commit_timestamp = on`, a server setting that needs a restart), the watch
//! scenario also measures from the commit itself: an event's sequence number is its writing
//! transaction's id times 65,536 plus its ordinal (see the server's `db/outbox.rs`), so
//! `pg_xact_commit_timestamp` of `sequence >> 16` is the commit time of the transaction that
//! wrote it. The load generator, the server and PostgreSQL share one machine and its clock.

use std::io::Write as _;
use std::process::{Command, Stdio};

use hdrhistogram::Histogram;

/// One delivered event: its sequence number and when it arrived (microseconds since the Unix
/// epoch, the load generator's clock).
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub sequence: i64,
    pub at_micros: i64,
}

/// What the commit timestamps gave for one phase.
#[derive(Debug)]
pub struct FromCommit {
    /// Microseconds from each event's commit to its arrival (at least 1).
    pub latency: Histogram<u64>,
    /// Events whose commit timestamp PostgreSQL no longer had (or never recorded).
    pub unknown: u64,
}

/// Whether the database at `url` records commit timestamps.
pub fn tracked(url: &str) -> bool {
    Command::new("psql")
        .args(["-Atq", "-c", "SHOW track_commit_timestamp"])
        .arg(url)
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "on")
}

/// The commit-to-arrival latency of `arrivals`, read from the database at `url` in one psql
/// session (the arrivals are copied into a temporary table).
pub fn from_commit(url: &str, arrivals: &[Arrival]) -> Result<FromCommit, String> {
    let mut child = Command::new("psql")
        .args(["-Atq", "-v", "ON_ERROR_STOP=1"])
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    let mut script = String::with_capacity(64 + arrivals.len() * 40);
    script.push_str("CREATE TEMP TABLE arrivals (sequence bigint, at_micros bigint);\n");
    script.push_str("COPY arrivals FROM STDIN;\n");
    for a in arrivals {
        script.push_str(&format!("{}\t{}\n", a.sequence, a.at_micros));
    }
    script.push_str("\\.\n");
    script.push_str(COMMIT_LATENCY_SQL);
    let mut stdin = child.stdin.take().ok_or("psql has no stdin")?;
    // psql reads as it goes; write from a thread so that a full stdout pipe cannot stall us.
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("psql failed: {e}"))?;
    let written = writer
        .join()
        .map_err(|_| "psql writer panicked".to_owned())?;
    if !out.status.success() {
        return Err(format!(
            "reading commit timestamps failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    written.map_err(|e| format!("cannot write to psql: {e}"))?;
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// One line per arrival: the latency in microseconds, or nothing when the commit timestamp is
/// unknown (transaction ids below 3 are PostgreSQL's own, which it refuses to look up).
const COMMIT_LATENCY_SQL: &str = "SELECT a.at_micros - (extract(epoch FROM c.at) * 1000000)::bigint \
     FROM arrivals a, LATERAL (SELECT CASE WHEN a.sequence >> 16 >= 3 THEN \
     pg_xact_commit_timestamp(xid(((a.sequence >> 16)::text)::xid8)) END AS at) c;\n";

fn parse(text: &str) -> Result<FromCommit, String> {
    let mut latency = crate::engine::histogram();
    let mut unknown = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            unknown += 1;
            continue;
        }
        let micros: i64 = line
            .parse()
            .map_err(|_| format!("psql gave {line:?} for a latency"))?;
        latency.saturating_record(micros.max(1) as u64);
    }
    Ok(FromCommit { latency, unknown })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lines_are_unknown_commits_and_negative_gaps_count_as_one_microsecond() {
        let r = parse("1500\n\n-3\n2500\n").expect("parsed");
        assert_eq!((r.latency.len(), r.unknown), (3, 1));
        assert_eq!(r.latency.min(), 1);
        assert!(parse("12\nabc\n").is_err());
    }
}
