//! The changes scenario (`run changes`): a CRM's consumers following WatchContactChanges
//! while a bulk import runs flat out in the same domain (`changes`).
//!
//! `--concurrency` import streams (default 2) send ImportContacts calls of
//! [`IMPORT_BATCH`] new contacts each, one after the other, for `--duration`; every imported
//! contact is one `CREATED` change. `--consumers` (default 1) follow the feed through the
//! SDK's `watch_contact_changes` as fast as they can, `--slow-consumers` (default 1) read only
//! `--slow-rate` changes per second (default 100) while the import runs, then catch up. Each
//! consumer has its own connection, as each CRM or warehouse would.
//!
//! Reported: contacts imported per second (and each call's latency); changes delivered per
//! second to each consumer, and the lag from each change's time (`occurred_at`, written by
//! the server when its transaction writes it, just before the commit) to its arrival; how long
//! the consumers took to receive everything once the import stopped; whether every consumer
//! got every change once and in order; and, with `--server-pid`, the server's resident memory
//! every second: it must not grow with the slow consumers' backlog (the server reads a feed's
//! changes by batch and sends them under flow control: the backlog stays in the database).
//!
//! The imported contacts stay in the domain: their numbers (`+4479…`), e-mails and chat
//! identities are the run's own, so the seeded contacts' numbers stay as the other scenarios
//! expect them.
//!
//! Imports the run's arguments, client side and progress line (`args`, `ops`, `measure`) and
//! the crate's data, engine and report; not the run's entry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::watch::{ChangeFilter, ChangeItem, WatchOptions};
use client_info_sdk::{Client, pb};
use futures_util::StreamExt as _;
use hdrhistogram::Histogram;

use super::args::{DEFAULT_IMPORTERS, DEFAULT_SLOW_RATE, RunArgs};
use super::measure::progress;
use super::ops::{code_name, connect};
use crate::Target;
use crate::data;
use crate::engine::{self, Counters, Recorder};
use crate::report::{Feed, Load, Memory, Phase};
use crate::seed::{DEFAULT_DOMAIN, State};

/// Contacts per ImportContacts call: the server's own insert batch.
pub const IMPORT_BATCH: u64 = 2000;

/// How long the consumers may take to receive everything once the import stopped.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

/// Import record `n` of the run stamped `stamp`: a seeded contact's name, labels and
/// attributes, with numbers, e-mails and identities of its own.
fn record(stamp: u64, n: u64) -> pb::ImportContactsRequest {
    let mut r = data::record(n);
    let run = stamp % 100;
    r.communications = vec![
        phone(format!("+4479{:02}{:06}", run, n % 1_000_000)),
        email(format!("import-{stamp}-{n}@example.com")),
    ];
    if n.is_multiple_of(3) {
        r.communications.push(messaging(
            "telegram",
            format!("tg-{stamp}-{n}"),
            data::name(n),
        ));
    }
    r.attributes[0].value = format!("IMP-{stamp}-{n}");
    r
}

/// What one consumer saw.
#[derive(Debug, Default)]
struct Seen {
    /// Changes received.
    count: u64,
    /// Changes whose position was not above the one before (repeated or out of order).
    disorder: u64,
    /// The last position.
    last: i64,
    /// When the last change arrived.
    last_at: Option<Instant>,
    /// The error that ended it.
    error: Option<String>,
}

/// The time since the epoch.
fn now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The resident memory of process `pid`, in MiB (VmRSS of /proc/PID/status).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// One consumer: follows the feed from `after`, recording each change's lag in `lag` (fast
/// ones) and pacing itself at `rate` changes per second until `stopped` (slow ones).
fn consume(
    client: Client,
    after: i64,
    rate: Option<u64>,
    stopped: Arc<AtomicBool>,
    lag: Option<Arc<Mutex<Histogram<u64>>>>,
    delivered: Arc<Counters>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen {
        last: after,
        ..Seen::default()
    }));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let options = WatchOptions {
            resume_after: after,
            ..WatchOptions::default()
        };
        let mut feed = Box::pin(client.watch_contact_changes(ChangeFilter::default(), options));
        let pace = rate.map(|r| Duration::from_secs_f64(1.0 / r as f64));
        let mut tick = pace.map(tokio::time::interval);
        while let Some(item) = feed.next().await {
            let change = match item {
                Ok(ChangeItem::Change(c)) => c,
                Ok(_) => continue,
                Err(e) => {
                    if let Ok(mut s) = record.lock() {
                        s.error = Some(code_name(&e));
                    }
                    return;
                }
            };
            if let Some(h) = &lag
                && let Some(at) = change.occurred_at
            {
                let at = Duration::new(at.seconds.max(0) as u64, at.nanos.max(0) as u32);
                let micros = now().saturating_sub(at).as_micros() as u64;
                if let Ok(mut h) = h.lock() {
                    h.saturating_record(micros.max(1));
                }
            }
            delivered.ops.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut s) = record.lock() {
                if change.position <= s.last {
                    s.disorder += 1;
                }
                s.last = change.position;
                s.count += 1;
                s.last_at = Some(Instant::now());
            }
            if let Some(t) = tick.as_mut()
                && !stopped.load(Ordering::Relaxed)
            {
                t.tick().await;
            }
        }
    });
    (seen, task)
}

/// The changes scenario; see the module documentation. Returns the import and delivery phases
/// and what the feed's consumers saw.
pub(super) async fn changes(
    target: &Target,
    state: &State,
    args: &RunArgs,
    stamp: u64,
) -> Result<(Vec<Phase>, Feed), String> {
    let domain = args.domain.as_deref().unwrap_or(DEFAULT_DOMAIN);
    let importers = args.concurrency.unwrap_or(DEFAULT_IMPORTERS);
    let slow_rate = args.slow_rate.unwrap_or(DEFAULT_SLOW_RATE);
    let crm = connect(target, &state.crm.token).await?;
    // Where the feed stands: the consumers start after it, so they see the import's changes
    // and nothing before.
    let start = {
        let mut probe =
            Box::pin(crm.watch_contact_changes(ChangeFilter::default(), WatchOptions::default()));
        match probe.next().await {
            Some(Ok(ChangeItem::Started(p))) => p,
            Some(Err(e)) if e.code() == client_info_sdk::tonic::Code::PermissionDenied => {
                return Err(format!(
                    "the state file's CRM token lacks contacts.changes ({e}): seed again with this harness"
                ));
            }
            other => return Err(format!("opening the change feed: {other:?}")),
        }
    };
    let stopped = Arc::new(AtomicBool::new(false));
    let lag = Arc::new(Mutex::new(engine::histogram()));
    let delivered = Arc::new(Counters::default());
    let mut fast = Vec::new();
    for _ in 0..args.consumers {
        let client = connect(target, &state.crm.token).await?;
        fast.push(consume(
            client,
            start,
            None,
            stopped.clone(),
            Some(lag.clone()),
            delivered.clone(),
        ));
    }
    let slow_counter = Arc::new(Counters::default());
    let mut slow = Vec::new();
    for _ in 0..args.slow_consumers {
        let client = connect(target, &state.crm.token).await?;
        slow.push(consume(
            client,
            start,
            Some(slow_rate),
            stopped.clone(),
            None,
            slow_counter.clone(),
        ));
    }
    let memory: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sampler = args.server_pid.map(|pid| {
        let memory = memory.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Some(m) = rss_mib(pid)
                    && let Ok(mut v) = memory.lock()
                {
                    v.push(m);
                }
            }
        })
    });
    if args.server_pid.is_none() {
        println!("no --server-pid: the server's memory is not sampled");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before_mib = args.server_pid.and_then(rss_mib);

    // The import, flat out.
    let counters = Arc::new(Counters::default());
    let ticker = progress(counters.clone(), "import".to_owned(), false, None);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = Vec::new();
    for _ in 0..importers {
        let crm = crm.clone();
        let next = next.clone();
        let counters = counters.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder {
                latency: engine::histogram(),
                ..Recorder::default()
            };
            let mut imported = 0u64;
            while Instant::now() < deadline {
                let first = next.fetch_add(IMPORT_BATCH, Ordering::Relaxed);
                let records = (first..first + IMPORT_BATCH).map(move |n| record(stamp, n));
                let sent = Instant::now();
                rec.scheduled += 1;
                match crm.import_contacts(tokio_stream::iter(records)).await {
                    Ok(r) => {
                        engine::record(&mut rec.latency, sent.elapsed());
                        rec.ok += 1;
                        imported += r.imported.max(0) as u64;
                        counters
                            .ops
                            .fetch_add(r.imported.max(0) as u64, Ordering::Relaxed);
                        if !r.errors.is_empty() {
                            *rec.errors.entry("rejected records".to_owned()).or_default() +=
                                r.errors.len() as u64;
                        }
                    }
                    Err(e) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        *rec.errors.entry(code_name(&e)).or_default() += 1;
                    }
                }
            }
            (rec, imported)
        }));
    }
    let mut import = Recorder {
        latency: engine::histogram(),
        ..Recorder::default()
    };
    let mut imported = 0;
    for t in tasks {
        let (r, n) = t.await.map_err(|e| e.to_string())?;
        import.latency.add(&r.latency).map_err(|e| e.to_string())?;
        import.scheduled += r.scheduled;
        import.ok += r.ok;
        for (k, v) in r.errors {
            *import.errors.entry(k).or_default() += v;
        }
        imported += n;
    }
    let import_ended = Instant::now();
    stopped.store(true, Ordering::Relaxed);
    ticker.abort();
    eprintln!();
    let at_stop_mib = args.server_pid.and_then(rss_mib);
    let behind: Vec<u64> = slow
        .iter()
        .map(|(s, _)| imported.saturating_sub(s.lock().map(|s| s.count).unwrap_or(0)))
        .collect();

    // Everyone catches up.
    let all: Vec<&Arc<Mutex<Seen>>> = fast.iter().chain(slow.iter()).map(|(s, _)| s).collect();
    let caught_up = |seen: &[&Arc<Mutex<Seen>>]| {
        seen.iter().all(|s| {
            s.lock()
                .map(|s| s.count >= imported || s.error.is_some())
                .unwrap_or(true)
        })
    };
    while !caught_up(&all) && import_ended.elapsed() < CATCH_UP_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A moment more, for a change delivered twice to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_mib = args.server_pid.and_then(rss_mib);
    if let Some(s) = sampler {
        s.abort();
    }
    for (_, task) in fast.iter().chain(slow.iter()) {
        task.abort();
    }

    let latest = |seen: &[(Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>)]| {
        seen.iter()
            .filter_map(|(s, _)| s.lock().ok().and_then(|s| s.last_at))
            .max()
    };
    let fast_done = latest(&fast).unwrap_or(import_ended);
    let slow_done = latest(&slow);
    let mut problems = BTreeMap::new();
    let mut in_order = true;
    let mut min_fast = u64::MAX;
    for (s, _) in fast.iter().chain(slow.iter()) {
        let s = s.lock().map_err(|_| "poisoned".to_owned())?;
        if let Some(e) = &s.error {
            *problems.entry(format!("feed ended: {e}")).or_default() += 1;
        }
        if s.disorder > 0 || s.count != imported {
            in_order = false;
        }
    }
    for (s, _) in &fast {
        min_fast = min_fast.min(s.lock().map(|s| s.count).unwrap_or(0));
    }
    if fast.is_empty() {
        min_fast = 0;
    }

    let import_phase = {
        let mut p = Phase::new(
            "import",
            domain,
            Load::Closed(importers),
            &import,
            started,
            import_ended,
        );
        // Contacts, not calls, per second.
        p.ok = imported;
        p.throughput = imported as f64 / p.seconds.max(f64::EPSILON);
        p
    };
    let delivery = Recorder {
        latency: lag.lock().map_err(|_| "poisoned".to_owned())?.clone(),
        scheduled: imported,
        ok: min_fast,
        errors: problems,
        ..Recorder::default()
    };
    let delivery_phase = Phase::new(
        "write-to-delivery",
        domain,
        Load::Closed(args.consumers),
        &delivery,
        started,
        fast_done,
    );
    let samples = memory.lock().map(|m| m.clone()).unwrap_or_default();
    let feed = Feed {
        imported,
        consumers: args.consumers,
        slow_consumers: args.slow_consumers,
        slow_rate,
        catch_up_s: fast_done
            .saturating_duration_since(import_ended)
            .as_secs_f64(),
        slow_behind_max: behind.iter().copied().max().unwrap_or(0),
        slow_drain_s: slow_done.map(|d| d.saturating_duration_since(import_ended).as_secs_f64()),
        in_order,
        memory_mib: before_mib.map(|before| Memory {
            before,
            at_stop: at_stop_mib.unwrap_or(before),
            after: after_mib.unwrap_or(before),
            max: samples.iter().copied().fold(before, f64::max),
            samples,
        }),
    };
    import_phase.print();
    delivery_phase.print();
    feed.print();
    Ok((vec![import_phase, delivery_phase], feed))
}
