//! The soak (`soak`): a realistic mix of requests at a fixed rate for a long time, with session
//! streams held open, reported every interval (a minute by default) so that what creeps (the
//! server's memory, its descriptors, the database's connections, latency) shows as a slope.
//!
//! - **The mix**, one request per slot of a cycle of 20 ([`MIX`]): 9 panel reads
//!   (GetClientInfo of calls offered before the run and kept open), 2 offers, 2 accepts and 2
//!   closes of calls (an accept takes the oldest offered call, a close the oldest accepted one;
//!   with none waiting an accept offers and a close reads a panel), 4 searches (2 by a phone
//!   number as written, 1 by a full name, 1 by CRM id) and 1 create with relink (a chat offered
//!   and accepted, a contact created from it that takes its identity from another, the chat
//!   closed: 4 RPCs timed as one request). Beside it, `--streams` WatchAgentSession streams
//!   (default 1,000), one connection per agent as each desktop has, on which the offers,
//!   accepts and closes of their agents arrive: each event's latency from its write
//!   (`occurred_at`) to its arrival is recorded. A stream that ends counts as an error.
//! - **The rate**: `--rate R` as given, or half the throughput of a closed-loop run of the
//!   same mix, with the streams open, first (`--find-max`, default 60 s, `--concurrency`
//!   clients, default 16): the targets' "half the closed-loop maximum".
//! - **Each interval** is an open-loop phase at the rate ([`crate::engine::open_loop`]: latency
//!   from each request's intended start), then a sample of the server's VmRSS and open
//!   descriptors (`/proc/PID/status`, `/proc/PID/fd`; `--server-pid`, or the process
//!   listening on the URL's port) and of the connections to its database
//!   (`pg_stat_activity`, over a connection the harness holds for the run).
//! - **Pass**: no error in any interval, and after `--warmup-intervals` (default 1) the slopes
//!   per hour by least squares of RSS and descriptors within their limits and that of p99
//!   within a fraction of its median ([`crate::soak`]). The table, the slopes and the verdict
//!   are printed, `--json` and `--chart` written, and the command fails when the soak did.
//!
//! Imports the run's client side (`ops`) and the crate's engine, data and soak report; not the
//! run's entry.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use client_info_sdk::interactions::{call, chat};
use client_info_sdk::pb;
use rand::Rng as _;

use super::args::parse_duration;
use super::ops::{Ctx, Lane, close_all, code_name, connect, op, random_index};
use super::vacuum::{autovacuum_off, vacuum_if_needed};
use crate::Target;
use crate::data;
use crate::engine::{self, Counters, OpenLoop};
use crate::report::Percentiles;
use crate::scenario::Scenario;
use crate::seed::{DEFAULT_DOMAIN, StateFile};
use crate::soak::{
    HEADER, Limits, Minute, RateSource, SOAK_FORMAT, Slopes, SoakReport, median_p99, row, verdict,
};

/// Options of `soak`.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long to soak (seconds, or with an s/m suffix: 30m).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    duration: Duration,
    /// The reporting interval: a row of the table, a point of each slope.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    interval: Duration,
    /// Intervals at the start left out of the slopes (their errors still count).
    #[arg(long, default_value_t = 1)]
    warmup_intervals: usize,
    /// Requests of the mix per second; without it, half the throughput of a closed-loop run
    /// of the same mix first (--find-max).
    #[arg(long, value_parser = super::args::parse_rate)]
    rate: Option<u64>,
    /// Without --rate: how long the closed-loop run that finds the maximum lasts.
    #[arg(long, default_value = "60s", value_parser = parse_duration, conflicts_with = "rate")]
    find_max: Duration,
    /// Without --rate: the closed-loop run's clients.
    #[arg(long, default_value_t = 16, conflicts_with = "rate")]
    concurrency: usize,
    /// WatchAgentSession streams held open, over the state's agents (one connection each).
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Requests in flight at most; a request due while the cap is full waits for a slot.
    #[arg(long, default_value_t = 1000)]
    max_in_flight: usize,
    /// The server's process id [default: the process listening on the URL's port].
    #[arg(long)]
    server_pid: Option<u32>,
    /// Pass: the server's RSS slope at most this many MiB per hour.
    #[arg(long, default_value_t = 10.0)]
    rss_limit: f64,
    /// Pass: the server's descriptor slope at most this many per hour.
    #[arg(long, default_value_t = 10.0)]
    fd_limit: f64,
    /// Pass: the p99 slope per hour at most this fraction of the median interval's p99.
    #[arg(long, default_value_t = 0.5)]
    p99_growth_limit: f64,
    /// The state file's domain to run in [default: the one `seed` made without --domain].
    #[arg(long)]
    domain: Option<String>,
    /// Skip the VACUUM ANALYZE before the run when the database has autovacuum off.
    #[arg(long)]
    no_vacuum: bool,
    /// Write the summary (every interval, the slopes, the verdict) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the intervals (latency, throughput, RSS, descriptors, connections) into this SVG.
    #[arg(long)]
    chart: Option<PathBuf>,
}

/// A kind of request of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Info,
    Offer,
    Accept,
    Close,
    SearchDestination,
    SearchName,
    SearchAttribute,
    Relink,
}

/// The cycle of 20 slots request `k` takes its kind from (`MIX[k % 20]`): reads spread between
/// the writes, each call's accept and close a few slots after an offer.
const MIX: [Kind; 20] = [
    Kind::Offer,
    Kind::Info,
    Kind::Info,
    Kind::SearchDestination,
    Kind::Accept,
    Kind::Info,
    Kind::SearchName,
    Kind::Info,
    Kind::Close,
    Kind::Info,
    Kind::Offer,
    Kind::Info,
    Kind::SearchDestination,
    Kind::Accept,
    Kind::Info,
    Kind::Relink,
    Kind::Close,
    Kind::Info,
    Kind::SearchAttribute,
    Kind::Info,
];

/// The mix as (kind, slots of 20), for the report.
fn mix_shares() -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for k in MIX {
        let name = format!("{k:?}");
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 += 1,
            None => out.push((name, 1)),
        }
    }
    out
}

/// The calls between their offer and accept, and between their accept and close.
#[derive(Default)]
struct Calls {
    offered: Mutex<VecDeque<(String, i64)>>,
    accepted: Mutex<VecDeque<String>>,
}

impl Calls {
    fn pop_offered(&self) -> Option<(String, i64)> {
        self.offered.lock().ok()?.pop_front()
    }

    fn pop_accepted(&self) -> Option<String> {
        self.accepted.lock().ok()?.pop_front()
    }

    /// Everything still open, to close at the end.
    fn drain(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .offered
            .lock()
            .map(|mut q| q.drain(..).map(|(iid, _)| iid).collect())
            .unwrap_or_default();
        if let Ok(mut q) = self.accepted.lock() {
            out.extend(q.drain(..));
        }
        out
    }
}

/// Request `n` of the mix.
async fn mix_op(ctx: &Ctx, calls: &Calls, n: u64) -> Result<(), String> {
    let err = |e: client_info_sdk::SdkError| code_name(&e);
    let routing = &ctx.lanes[0].routing;
    let mut kind = MIX[(n % MIX.len() as u64) as usize];
    if kind == Kind::Close {
        match calls.pop_accepted() {
            Some(iid) => {
                return routing
                    .close_interaction(iid)
                    .await
                    .map(|_| ())
                    .map_err(err);
            }
            None => kind = Kind::Info,
        }
    }
    if kind == Kind::Accept {
        match calls.pop_offered() {
            Some((iid, agent)) => {
                routing
                    .accept_interaction(iid.as_str(), agent)
                    .await
                    .map_err(err)?;
                if let Ok(mut q) = calls.accepted.lock() {
                    q.push_back(iid);
                }
                return Ok(());
            }
            None => kind = Kind::Offer,
        }
    }
    let scenario = match kind {
        Kind::Info => Scenario::ClientInfo,
        Kind::SearchDestination => Scenario::SearchDestination,
        Kind::SearchName => Scenario::SearchName,
        Kind::SearchAttribute => Scenario::SearchAttribute,
        Kind::Offer => {
            let i = random_index(&ctx.state);
            let agent = ctx.state.agents[rand::rng().random_range(0..ctx.agents.len())].id;
            let iid = format!("so-{}-{n}", ctx.stamp);
            routing
                .offer_interaction(call(&iid, data::written(i, n), agent))
                .await
                .map_err(err)?;
            if let Ok(mut q) = calls.offered.lock() {
                q.push_back((iid, agent));
            }
            return Ok(());
        }
        Kind::Relink => {
            // A chat whose identity one contact holds, a new contact created from it that
            // takes the identity over, the chat closed: as `run create-relink`, then closed.
            let i = random_index(&ctx.state) / 3 * 3;
            let identity = data::identity(i).unwrap_or_default();
            let a = (n as usize / MIX.len()) % ctx.agents.len();
            let agent = ctx.state.agents[a].id;
            let iid = format!("sr-{}-{n}", ctx.stamp);
            routing
                .offer_interaction(chat(&iid, "telegram", identity, data::name(i), agent))
                .await
                .map_err(err)?;
            routing
                .accept_interaction(iid.as_str(), agent)
                .await
                .map_err(err)?;
            let created = ctx.agents[a]
                .create_contact(pb::CreateContactRequest {
                    request_id: iid.clone(),
                    interaction_id: iid.clone(),
                    display_name: data::name(i),
                    ..Default::default()
                })
                .await;
            let closed = routing.close_interaction(iid).await;
            created.map_err(err)?;
            return closed.map(|_| ()).map_err(err);
        }
        Kind::Accept | Kind::Close => unreachable!("handled above"),
    };
    op(ctx, scenario, (n % 64) as usize, n)
        .await
        .map(|_| ())
        .map_err(err)
}

/// The session streams: each event's write-to-arrival latency, and streams that ended.
struct Streams {
    delivery: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    opened: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Streams {
    /// Opens `count` streams over the first agents of `ctx`, 200 at a time, each agent on a
    /// connection of its own; waits (at most a minute) until every one opened or was refused.
    async fn open(target: &Target, ctx: &Ctx, count: usize) -> Result<Streams, String> {
        let delivery = Arc::new(Mutex::new(engine::histogram()));
        let opened = Arc::new(AtomicU64::new(0));
        let ended = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let watched = count.min(ctx.state.agents.len()).max(1);
        let mut clients = Vec::with_capacity(watched);
        for a in ctx.state.agents.iter().take(watched) {
            clients.push(connect(target, &a.token).await?);
        }
        let gate = Arc::new(tokio::sync::Semaphore::new(200));
        let mut readers = Vec::with_capacity(count);
        for s in 0..count {
            let client = clients[s % clients.len()].clone();
            let (delivery, opened, ended, refused, gate) = (
                delivery.clone(),
                opened.clone(),
                ended.clone(),
                refused.clone(),
                gate.clone(),
            );
            readers.push(tokio::spawn(async move {
                let permit = gate.acquire_owned().await;
                let opening = client.watch_session_once(0).await;
                drop(permit);
                let Ok(mut stream) = opening else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                while let Ok(Some(msg)) = stream.message().await {
                    let Some(e) = msg.event else { continue };
                    if e.sequence == 0
                        || matches!(e.event, Some(pb::agent_event::Event::Snapshot(_)))
                    {
                        continue;
                    }
                    let Some(at) = e.occurred_at else { continue };
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default();
                    let at = Duration::new(at.seconds.max(0) as u64, at.nanos.max(0) as u32);
                    if let Ok(mut h) = delivery.lock() {
                        engine::record(&mut h, now.saturating_sub(at));
                    }
                }
                ended.fetch_add(1, Ordering::Relaxed);
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while opened.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) < count as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Streams {
            delivery,
            opened,
            ended,
            refused,
            readers,
        })
    }

    /// The delivery latencies since the last call.
    fn take(&self) -> Percentiles {
        match self.delivery.lock() {
            Ok(mut h) => {
                let p = Percentiles::of(&h);
                h.reset();
                p
            }
            Err(_) => Percentiles::default(),
        }
    }
}

/// The process listening on TCP `port` (IPv4 or IPv6), from /proc/net and the processes'
/// descriptors (only those of this user are readable, which the server started beside the
/// harness is).
fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if *st == "0A" && p == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| Path::new(i) == link)
            {
                return Some(pid);
            }
        }
    }
    None
}

/// The port of `url` (`http://host:port/...`).
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// VmRSS of `pid` in MiB.
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

/// Open descriptors of `pid`.
fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Connections to the database at `url` other than the harness's own sampling connection.
struct DbSampler {
    client: tokio_postgres::Client,
}

impl DbSampler {
    async fn connect(url: &str) -> Result<DbSampler, String> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        tokio::spawn(connection);
        Ok(DbSampler { client })
    }

    async fn connections(&self) -> Option<u64> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .ok()?;
        u64::try_from(row.get::<_, i64>(0)).ok()
    }
}

/// What is sampled at the end of each interval besides the requests.
#[derive(Clone, Copy)]
struct Probes<'a> {
    streams: &'a Streams,
    db: &'a DbSampler,
    server_pid: Option<u32>,
}

/// Runs `soak`.
pub async fn soak(target: &Target, state_path: &Path, args: SoakArgs) -> Result<(), String> {
    if args.interval > args.duration {
        return Err("--interval is longer than --duration".to_owned());
    }
    let file = StateFile::load(state_path)?;
    let domain = args
        .domain
        .clone()
        .unwrap_or_else(|| DEFAULT_DOMAIN.to_owned());
    let state = file.domain(Some(&domain))?.clone();
    if state.agents.is_empty() {
        return Err(format!("the state file's domain {domain} has no agents"));
    }
    let server_pid = match args.server_pid {
        Some(pid) => Some(pid),
        None => port_of(&target.url).and_then(pid_listening_on),
    };
    match server_pid {
        Some(pid) => println!("server process {pid}"),
        None => println!(
            "no server process found listening on the URL's port (give --server-pid): RSS and \
             descriptors not sampled, so the soak cannot pass"
        ),
    }
    let db = DbSampler::connect(&state.database_url).await?;
    let routing = connect(target, &state.routing.token).await?;
    let crm = routing
        .with_token(Some(&state.crm.token))
        .map_err(|e| e.to_string())?;
    let mut agents = Vec::with_capacity(state.agents.len());
    for a in &state.agents {
        agents.push(
            routing
                .with_token(Some(&a.token))
                .map_err(|e| e.to_string())?,
        );
    }
    let now = super::unix_now()?;
    let stamp = now.as_millis() as u64;
    // The panels read: calls offered now and kept open to the end, as `run client-info`.
    let offered = super::ops::offer_open_calls(&routing, &state, "si", stamp, 128).await?;
    if !args.no_vacuum {
        vacuum_if_needed(&state);
    }
    if autovacuum_off(&state) == Some(true) {
        // Found by a soak on the CI machine (conf.d turns autovacuum off): the interactions
        // table held 2.3 dead rows per live one after 10 minutes, and p99 grew tenfold.
        eprintln!(
            "WARNING: autovacuum is off on the database server: over a soak, dead rows pile up \
             and latency grows with them, which is the database's configuration, not the \
             server. Production runs autovacuum; turn it on for the run with \
             psql -c 'ALTER SYSTEM SET autovacuum = on' -c 'SELECT pg_reload_conf()' \
             (ALTER SYSTEM RESET autovacuum afterwards)."
        );
    }
    let ctx = Arc::new(Ctx {
        state,
        domain: domain.clone(),
        routing: routing.clone(),
        lanes: vec![Lane { routing, crm }],
        agents,
        stamp,
        seq: AtomicU64::new(0),
        opened: Mutex::new(Vec::new()),
        offered,
    });
    let calls = Arc::new(Calls::default());
    let streams = Streams::open(target, &ctx, args.streams).await?;
    println!(
        "{} session streams open, {} refused",
        streams.opened.load(Ordering::Relaxed),
        streams.refused.load(Ordering::Relaxed)
    );
    let probes = Probes {
        streams: &streams,
        db: &db,
        server_pid,
    };
    let result = soak_with(&target.url, &args, &ctx, &calls, &probes, now).await;
    for r in &streams.readers {
        r.abort();
    }
    let mut open = calls.drain();
    open.extend(ctx.offered.iter().map(|(iid, _)| iid.clone()));
    close_all(&ctx.routing, open).await;
    let report = result?;
    if let Some(path) = &args.json {
        report.write(path)?;
        eprintln!("summary written to {}", path.display());
    }
    if let Some(path) = &args.chart {
        let text = crate::soak::svg(&report)?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    report.print_summary();
    if report.passed {
        Ok(())
    } else {
        Err(format!("soak failed: {}", report.failures.join("; ")))
    }
}

/// The closed-loop maximum (unless `--rate`), then the intervals; the report.
async fn soak_with(
    url: &str,
    args: &SoakArgs,
    ctx: &Arc<Ctx>,
    calls: &Arc<Calls>,
    probes: &Probes<'_>,
    now: Duration,
) -> Result<SoakReport, String> {
    let Probes {
        streams,
        db,
        server_pid,
    } = *probes;
    let (rate, rate_source) = match args.rate {
        Some(r) => (
            r,
            RateSource {
                how: "given".to_owned(),
                closed_concurrency: None,
                closed_seconds: None,
                closed_throughput: None,
                closed_errors: None,
            },
        ),
        None => {
            println!(
                "closed loop of the mix, {} clients, {} s, to find the maximum",
                args.concurrency,
                args.find_max.as_secs()
            );
            let (ctx, calls) = (ctx.clone(), calls.clone());
            let (recorder, started, ended) = engine::closed_loop(
                args.concurrency,
                args.find_max,
                Arc::new(Counters::default()),
                move |_, _| {
                    let (ctx, calls) = (ctx.clone(), calls.clone());
                    async move {
                        let n = ctx.next();
                        let t = Instant::now();
                        mix_op(&ctx, &calls, n).await.map(|()| t.elapsed())
                    }
                },
            )
            .await?;
            let secs = ended.duration_since(started).as_secs_f64().max(1e-9);
            let throughput = recorder.ok as f64 / secs;
            let p = Percentiles::of(&recorder.latency);
            println!(
                "closed loop: {throughput:.1} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} errors {:?}",
                p.p50,
                p.p99,
                recorder.error_count(),
                recorder.errors
            );
            let rate = ((throughput / 2.0).round() as u64).max(1);
            (
                rate,
                RateSource {
                    how: "half the closed-loop maximum".to_owned(),
                    closed_concurrency: Some(args.concurrency),
                    closed_seconds: Some(secs),
                    closed_throughput: Some(throughput),
                    closed_errors: Some(recorder.error_count()),
                },
            )
        }
    };
    let intervals = (args.duration.as_secs() / args.interval.as_secs()).max(1) as usize;
    println!(
        "soak: {rate} requests/s of the mix for {intervals} x {} s, {} streams",
        args.interval.as_secs(),
        args.streams
    );
    println!("{HEADER}");
    let soak_start = Instant::now();
    streams.take();
    let mut ended_before = streams.ended.load(Ordering::Relaxed);
    let mut minutes = Vec::with_capacity(intervals);
    for index in 1..=intervals {
        let (ctx2, calls2) = (ctx.clone(), calls.clone());
        let load = OpenLoop {
            rate,
            duration: args.interval,
            max_in_flight: args.max_in_flight,
        };
        let (recorder, started, ended) =
            engine::open_loop(load, Arc::new(Counters::default()), move |_| {
                let (ctx, calls) = (ctx2.clone(), calls2.clone());
                async move {
                    let n = ctx.next();
                    mix_op(&ctx, &calls, n).await
                }
            })
            .await;
        let delivery_ms = streams.take();
        let mut errors = recorder.errors.clone();
        let ended_now = streams.ended.load(Ordering::Relaxed);
        if ended_now > ended_before {
            errors.insert("stream ended".to_owned(), ended_now - ended_before);
        }
        ended_before = ended_now;
        let secs = ended.duration_since(started).as_secs_f64().max(1e-9);
        let m = Minute {
            index,
            end_s: soak_start.elapsed().as_secs_f64(),
            scheduled: recorder.scheduled,
            ok: recorder.ok,
            throughput: recorder.ok as f64 / secs,
            errors,
            unsent: recorder.unsent,
            latency_ms: Percentiles::of(&recorder.latency),
            delivery_ms,
            rss_mib: server_pid.and_then(rss_mib),
            fds: server_pid.and_then(fds),
            db_connections: db.connections().await,
        };
        println!("{}", row(&m));
        if !m.errors.is_empty() {
            println!("      errors: {:?}", m.errors);
        }
        minutes.push(m);
    }
    let warmup = args.warmup_intervals.min(minutes.len().saturating_sub(2));
    let slopes = Slopes::of(&minutes, warmup);
    let limits = Limits {
        rss_mib_per_hour: args.rss_limit,
        fds_per_hour: args.fd_limit,
        p99_growth_per_hour: args.p99_growth_limit,
    };
    let failures = verdict(&minutes, warmup, &slopes, &limits);
    Ok(SoakReport {
        format: SOAK_FORMAT,
        server: url.to_owned(),
        server_pid,
        domain: ctx.domain.clone(),
        contacts: ctx.state.contacts,
        started_at: now.as_secs(),
        mix: mix_shares(),
        streams: args.streams,
        streams_open: streams.opened.load(Ordering::Relaxed),
        rate,
        rate_source,
        interval_s: args.interval.as_secs_f64(),
        warmup_intervals: warmup,
        median_p99_ms: median_p99(&minutes, warmup),
        minutes,
        slopes,
        limits,
        passed: failures.is_empty(),
        failures,
    })
}

#[cfg(test)]
mod tests {
    use crate::run::soak::*;

    #[test]
    fn the_mix_is_balanced_and_the_port_is_found_in_the_url() {
        let shares = mix_shares();
        let of = |k: &str| shares.iter().find(|(n, _)| n == k).map_or(0, |e| e.1);
        assert_eq!(shares.iter().map(|e| e.1).sum::<u32>(), 20);
        assert_eq!((of("Offer"), of("Accept"), of("Close")), (2, 2, 2));
        assert_eq!((of("Info"), of("Relink")), (9, 1));
        assert_eq!(port_of("http://127.0.0.1:20061"), Some(20061));
        assert_eq!(port_of("https://localhost:50063/"), Some(50063));
        assert_eq!(port_of("http://localhost"), None);
    }

    #[test]
    fn this_process_is_sampled() {
        let pid = std::process::id();
        assert!(rss_mib(pid).is_some_and(|r| r > 0.0));
        assert!(fds(pid).is_some_and(|n| n >= 3));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(pid_listening_on(port), Some(pid));
    }
}
