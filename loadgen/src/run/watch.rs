//! The watch scenario (`run watch`): WatchAgentSession streams held open while offers are
//! generated at each event rate, and the latency from each event's commit (or write) to its
//! delivery (`watch`).
//!
//! Imports the run's arguments, client side and progress line (`args`, `ops`, `measure`) and
//! the crate's engine, delivery and report; not the run's entry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use client_info_sdk::interactions::call;
use client_info_sdk::{Client, pb};
use rand::Rng as _;

use super::args::{DEFAULT_CONCURRENCY, RunArgs};
use super::measure::progress;
use super::ops::{close_all, code_name, connect};
use crate::Target;
use crate::data;
use crate::delivery;
use crate::engine::{self, Counters, Recorder};
use crate::report::{Crossing, Load, Percentiles, Phase};
use crate::seed::{DEFAULT_DOMAIN, State};

/// The watch scenario: opens the streams once, then for each event rate generates offers for
/// the watched agents for `--duration` and records commit-to-delivery latency.
pub(super) async fn watch(
    target: &Target,
    state: &State,
    routing: &Client,
    args: &RunArgs,
    rates: &[u64],
    stamp: u64,
) -> Result<Vec<Phase>, String> {
    let latency = Arc::new(Mutex::new(engine::histogram()));
    let arrivals: Arc<Mutex<Vec<delivery::Arrival>>> = Arc::default();
    let from_commit = delivery::tracked(&state.database_url);
    if !from_commit {
        println!(
            "track_commit_timestamp is off: latency is from each event's write (inside its \
             statement, before its commit), not from the commit"
        );
    }
    let counters = Arc::new(Counters::default());
    let streams = args.streams.max(1);
    let watched = streams.min(state.agents.len().max(1));
    // One connection per agent, as each agent's desktop has its own; its streams share it.
    let mut agents = Vec::with_capacity(watched);
    for a in state.agents.iter().take(watched) {
        agents.push(connect(target, &a.token).await?);
    }
    // Streams open OPENING at a time, as desktops reconnecting after a restart would.
    const OPENING: usize = 200;
    let gate = Arc::new(tokio::sync::Semaphore::new(OPENING));
    let mut readers = Vec::new();
    let opened = Arc::new(AtomicU64::new(0));
    let refused: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    for s in 0..streams {
        let client = agents[s % agents.len()].clone();
        let latency = latency.clone();
        let arrivals = arrivals.clone();
        let counters = counters.clone();
        let opened = opened.clone();
        let refused = refused.clone();
        let gate = gate.clone();
        readers.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let opening = client.watch_session_once(0).await;
            drop(permit);
            let mut stream = match opening {
                Ok(stream) => stream,
                Err(e) => {
                    if let Ok(mut r) = refused.lock() {
                        *r.entry(code_name(&e)).or_default() += 1;
                    }
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            opened.fetch_add(1, Ordering::Relaxed);
            while let Ok(Some(msg)) = stream.message().await {
                let Some(e) = msg.event else { continue };
                if e.sequence == 0 || matches!(e.event, Some(pb::agent_event::Event::Snapshot(_))) {
                    continue;
                }
                if let Some(at) = e.occurred_at {
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default();
                    let at = Duration::new(at.seconds.max(0) as u64, at.nanos.max(0) as u32);
                    let micros = now.saturating_sub(at).as_micros() as u64;
                    if let Ok(mut h) = latency.lock() {
                        h.saturating_record(micros.max(1));
                    }
                    if from_commit && let Ok(mut a) = arrivals.lock() {
                        a.push(delivery::Arrival {
                            sequence: e.sequence,
                            at_micros: now.as_micros() as i64,
                        });
                    }
                }
                counters.ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let open_deadline = Instant::now() + Duration::from_secs(60);
    let refused_count = || refused.lock().map(|r| r.values().sum::<u64>()).unwrap_or(0);
    while (opened.load(Ordering::Relaxed) + refused_count()) < streams as u64
        && Instant::now() < open_deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{} streams open ({} agents)",
        opened.load(Ordering::Relaxed),
        watched
    );
    if let Ok(r) = refused.lock()
        && !r.is_empty()
    {
        println!("streams refused: {r:?}");
    }
    let ids: Vec<i64> = state.agents.iter().take(watched).map(|a| a.id).collect();
    let mut phases = Vec::new();
    for (p, &rate) in rates.iter().enumerate() {
        if rates.len() > 1 {
            println!("rate {rate} events/s");
        }
        if let Ok(mut h) = latency.lock() {
            h.reset();
        }
        if let Ok(mut a) = arrivals.lock() {
            a.clear();
        }
        let created: Arc<Mutex<Vec<String>>> = Arc::default();
        let started = Instant::now();
        let delivered_before = counters.ops.load(Ordering::Relaxed);
        let ticker = progress(counters.clone(), "watch".to_owned(), false, None);
        let offers_per_sec = (rate / 2).max(1);
        let generators = args.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        let per_gen = Duration::from_secs_f64(generators as f64 / offers_per_sec as f64);
        let deadline = started + args.duration;
        let mut gens = Vec::new();
        for g in 0..generators {
            let routing = routing.clone();
            let ids = ids.clone();
            let contacts = state.contacts;
            let created = created.clone();
            gens.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(per_gen);
                let mut n = 0u64;
                let mut failed = 0u64;
                while Instant::now() < deadline {
                    tick.tick().await;
                    n += 1;
                    let agent = ids[rand::rng().random_range(0..ids.len())];
                    let i = rand::rng().random_range(0..contacts.max(1));
                    let iid = format!("wa-{stamp}-{p}-{g}-{n}");
                    match routing
                        .offer_interaction(call(&iid, data::written(i, n), agent))
                        .await
                    {
                        Ok(_) => {
                            if let Ok(mut c) = created.lock() {
                                c.push(iid);
                            }
                        }
                        Err(_) => failed += 1,
                    }
                }
                (n, failed)
            }));
        }
        let mut offers = 0;
        let mut failed = 0;
        for g in gens {
            let (n, f) = g.await.map_err(|e| e.to_string())?;
            offers += n;
            failed += f;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        ticker.abort();
        eprintln!();
        let ended = Instant::now();
        let secs = ended.duration_since(started).as_secs_f64();
        let mut recorder = Recorder {
            latency: latency.lock().map_err(|_| "poisoned".to_owned())?.clone(),
            scheduled: offers,
            ok: counters.ops.load(Ordering::Relaxed) - delivered_before,
            ..Recorder::default()
        };
        if failed > 0 {
            recorder.errors.insert("offers failed".to_owned(), failed);
        }
        println!(
            "offers generated: {offers} ({:.0}/s), failed: {failed}",
            offers as f64 / secs
        );
        let mut phase = Phase::new(
            "write-to-delivery",
            args.domain.as_deref().unwrap_or(DEFAULT_DOMAIN),
            Load::Open(rate),
            &recorder,
            started,
            ended,
        );
        phase.service_ms = None;
        phase.schedule_lag_ms = None;
        let print = |label: &str, h: &Percentiles| {
            println!(
                "{label:<20} {:>9} ops {:>10.1} ops/s   p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms",
                phase.ok, phase.throughput, h.p50, h.p90, h.p99, h.max
            )
        };
        print("write-to-delivery", &phase.latency_ms);
        if from_commit {
            let arrived = arrivals
                .lock()
                .map(|mut a| std::mem::take(&mut *a))
                .unwrap_or_default();
            match delivery::from_commit(&state.database_url, &arrived) {
                Ok(c) => {
                    let commit = Percentiles::of(&c.latency);
                    print("commit-to-delivery", &commit);
                    if c.unknown > 0 {
                        println!("({} events without a commit timestamp)", c.unknown);
                    }
                    phase.from_write_ms = Some(phase.latency_ms);
                    phase.latency_ms = commit;
                    phase.label = "commit-to-delivery".to_owned();
                }
                Err(e) => eprintln!("{e}; the latency stays from the events' writes"),
            }
        }
        let created = created
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        close_all(routing, created).await;
        phases.push(phase);
    }
    for r in readers {
        r.abort();
    }
    if let Some(limit) = args.p99_limit
        && rates.len() > 1
    {
        Crossing::find(&phases, limit).print();
    }
    Ok(phases)
}
