//! `run SCENARIO`: drives one RPC mix and reports throughput, latency percentiles
//! (HdrHistogram) and errors by code, in one of three ways:
//!
//! - closed loop (`--concurrency N`, the default): N clients each waiting for its answer; with
//!   `--pgbench`, the same SQL replayed by pgbench at the same concurrency and duration, and
//!   the ratio;
//! - open loop (`--rate N`): N requests per second on a fixed schedule, latency from each
//!   request's intended start (see [`crate::engine`]); `--sweep R1,R2,...` runs each rate in
//!   turn and, with `--p99-limit`, finds where p99 crosses the limit;
//! - changes (`run changes`): a CRM's consumers of WatchContactChanges following a bulk
//!   import (see [`changes`]);
//! - the soak (`soak`, its own command): a mix of requests at a fixed rate for a long time
//!   beside held session streams, reported every minute (see [`soak`]);
//! - two domains (`--bulk-domain NAME`): the scenario alone (baseline), then again while a
//!   bulk update runs flat out in another domain (loaded), to see whether one tenant's writes
//!   slow another's (see [`crate::bulk`]).
//!
//! `--json FILE` writes everything measured ([`crate::report::Report`]); `--chart FILE.svg` draws
//! a sweep's latency against the rate.
//!
//! The files, each importing only those listed after it (and the crate's shared modules):
//! this entry (`run`: the flags' plan, the connections, the report's settings, then watch or
//! the phases) → `phases` (the plan's phases) → `two_domain`, `with_floor` (the runs made of
//! several phases), `watch`, `changes` and `soak` → `measure` (one phase) → `ops` (the run's context and one
//! request) → `vacuum` → `args` (the flags, their parsers and defaults) → the shared
//! [`Scenario`] (`crate::scenario`).

mod args;
mod changes;
mod measure;
mod ops;
mod phases;
mod soak;
mod two_domain;
mod vacuum;
mod watch;
mod with_floor;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use self::args::{Plan, plan};
use self::changes::changes;
use self::ops::{Ctx, Lane, close_all, connect};
use self::phases::measure_all;
use self::vacuum::vacuum_if_needed;
use self::watch::watch;
use self::with_floor::NO_WATCH_FLOOR;
use crate::Target;
use crate::report::{self, Report, Settings};
use crate::seed::{DEFAULT_DOMAIN, StateFile};

pub use self::args::{
    DEFAULT_BULK_CLIENTS, DEFAULT_CONCURRENCY, DEFAULT_IMPORTERS, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_SLOW_RATE, DEFAULT_WATCH_RATE, Rates, RunArgs, parse_duration, parse_latency,
    parse_rate, parse_sweep,
};
pub use self::soak::{SoakArgs, soak};
pub use self::with_floor::FLOOR_CONNECTIONS;
pub use crate::scenario::Scenario;

/// The time since the epoch.
fn unix_now() -> Result<Duration, String> {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| e.to_string())
}

/// Runs `run`.
pub async fn run(target: &Target, state_path: &Path, args: RunArgs) -> Result<(), String> {
    let plan = plan(&args)?;
    let file = StateFile::load(state_path)?;
    let domain = args
        .domain
        .clone()
        .unwrap_or_else(|| DEFAULT_DOMAIN.to_owned());
    let state = file.domain(Some(&domain))?.clone();
    let bulk_state = match &args.bulk_domain {
        Some(name) => Some(file.domain(Some(name))?.clone()),
        None => None,
    };
    let duration = args.duration;
    let url = target.url.as_str();
    let connections = args.connections.unwrap_or(1);
    let mut lanes = Vec::with_capacity(connections);
    for _ in 0..connections {
        let routing = connect(target, &state.routing.token).await?;
        let crm = routing
            .with_token(Some(&state.crm.token))
            .map_err(|e| e.to_string())?;
        lanes.push(Lane { routing, crm });
    }
    let routing = lanes[0].routing.clone();
    let mut agents = Vec::with_capacity(state.agents.len());
    for (k, a) in state.agents.iter().enumerate() {
        agents.push(
            lanes[k % lanes.len()]
                .routing
                .with_token(Some(&a.token))
                .map_err(|e| e.to_string())?,
        );
    }
    if agents.is_empty() {
        return Err(format!("the state file's domain {domain} has no agents"));
    }
    let now = unix_now()?;
    let stamp = now.as_millis() as u64;
    let max_in_flight = args.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    let load = match &plan {
        Plan::Closed(c) if args.scenario == Scenario::Changes => format!(
            "{c} import streams, {} consumers, {} slow ones",
            args.consumers, args.slow_consumers
        ),
        Plan::Closed(c) => format!(
            "concurrency {c} over {connections} connection{}",
            if connections == 1 { "" } else { "s" }
        ),
        Plan::Open(rates) if args.scenario == Scenario::Watch => format!(
            "{} events/s, {} streams, {} generators",
            join(rates),
            args.streams,
            args.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
        ),
        Plan::Open(rates) => format!(
            "open loop at {}/s (at most {max_in_flight} in flight, over {connections} connection{})",
            join(rates),
            if connections == 1 { "" } else { "s" }
        ),
    };
    println!(
        "scenario {:?}, {load}, {} s{}, {} contacts, domain {domain}, server {url}",
        args.scenario,
        duration.as_secs(),
        if matches!(&plan, Plan::Open(r) if r.len() > 1) {
            " per rate"
        } else {
            ""
        },
        state.contacts
    );
    if let Some(b) = &bulk_state {
        println!(
            "bulk: domain {} ({} contacts, {}), {}",
            args.bulk_domain.as_deref().unwrap_or_default(),
            b.contacts,
            if b.domain == state.domain {
                "the same domain as the measured one"
            } else {
                "another domain"
            },
            match args.bulk_rate {
                Some(r) => format!("{r} edits/s"),
                None => format!(
                    "{} clients flat out",
                    args.bulk_clients.unwrap_or(DEFAULT_BULK_CLIENTS)
                ),
            }
        );
    }
    if !args.no_vacuum {
        vacuum_if_needed(&state);
    }
    let mut report = Report {
        format: report::FORMAT,
        scenario: args.scenario.name(),
        server: url.to_owned(),
        domain: domain.clone(),
        contacts: state.contacts,
        started_at: now.as_secs(),
        settings: Settings {
            duration_s: duration.as_secs_f64(),
            concurrency: match plan {
                Plan::Closed(c) => Some(c),
                Plan::Open(_) => args
                    .concurrency
                    .filter(|_| args.scenario == Scenario::Watch),
            },
            rate: args.rate,
            sweep: args.sweep.clone().map(|r| r.0).unwrap_or_default(),
            max_in_flight: matches!(plan, Plan::Open(_))
                .then_some(max_in_flight)
                .filter(|_| args.scenario != Scenario::Watch),
            p99_limit_ms: args.p99_limit.map(|l| l.as_secs_f64() * 1000.0),
            bulk_domain: args.bulk_domain.clone(),
            bulk_clients: args
                .bulk_domain
                .as_ref()
                .map(|_| args.bulk_clients.unwrap_or(DEFAULT_BULK_CLIENTS)),
            bulk_rate: args.bulk_rate,
            streams: (args.scenario == Scenario::Watch).then_some(args.streams),
            warmup_s: args.warmup.map(|w| w.as_secs_f64()),
            connections: (!args.scenario.streams()).then_some(connections),
            rounds: args
                .pgbench
                .then(|| args.rounds.unwrap_or(1))
                .filter(|_| matches!(plan, Plan::Closed(_)) && !args.scenario.streams()),
        },
        results: Vec::new(),
        crossing: None,
        pgbench: None,
        floor: Vec::new(),
        interference: None,
        feed: None,
    };
    if args.scenario == Scenario::Changes {
        let (phases, feed) = changes(target, &state, &args, stamp).await?;
        report.results = phases;
        report.feed = Some(feed);
        return finish(&args, report);
    }
    if args.scenario == Scenario::Watch {
        if args.pgbench {
            println!("{NO_WATCH_FLOOR}");
        }
        let rates = match &plan {
            Plan::Open(r) => r.clone(),
            Plan::Closed(_) => vec![DEFAULT_WATCH_RATE],
        };
        report.results = watch(target, &state, &routing, &args, &rates, stamp).await?;
        return finish(&args, report);
    }
    let mut offered = Vec::new();
    if args.scenario == Scenario::ClientInfo {
        let count = (args.concurrency.unwrap_or(DEFAULT_CONCURRENCY) * 8).max(32);
        offered = ops::offer_open_calls(&routing, &state, "ci", stamp, count).await?;
    }
    let ctx = Arc::new(Ctx {
        state,
        domain,
        routing,
        lanes,
        agents,
        stamp,
        seq: AtomicU64::new(0),
        opened: Mutex::new(Vec::new()),
        offered,
    });
    let result = measure_all(target, &ctx, &args, &plan, bulk_state, &mut report).await;
    // The interactions GetClientInfo reads stay open until the end: the phases before only
    // close what they opened themselves.
    let mut opened = ctx.take_opened();
    opened.extend(ctx.offered.iter().map(|(iid, _)| iid.clone()));
    close_all(&ctx.routing, opened).await;
    result?;
    finish(&args, report)
}

/// Writes the JSON and the chart, as asked.
fn finish(args: &RunArgs, report: Report) -> Result<(), String> {
    if let Some(path) = &args.json {
        report.write(path)?;
        eprintln!("results written to {}", path.display());
    }
    if let Some(path) = &args.chart {
        crate::chart::write(std::slice::from_ref(&report), path)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

/// The rates as a comma-separated list.
fn join(rates: &[u64]) -> String {
    rates
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
