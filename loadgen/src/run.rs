//! `run SCENARIO`: drives one RPC mix at a fixed concurrency for a while and reports throughput,
//! latency percentiles (HdrHistogram) and errors by code; with `--pgbench`, the same SQL
//! replayed by pgbench at the same concurrency and duration, and the ratio.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use client_info_sdk::interactions::{call, chat};
use client_info_sdk::{Client, SdkError, pb};
use hdrhistogram::Histogram;
use rand::Rng as _;

use crate::Target;
use crate::data;
use crate::floor;
use crate::seed::State;

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// OfferInteraction of calls from stored numbers in varied formats (identification).
    Offer,
    /// GetClientInfo of offered interactions.
    ClientInfo,
    /// SearchContacts by a phone number in varied formats.
    SearchDestination,
    /// SearchContacts by attribute crm_id=... (exact).
    SearchAttribute,
    /// SearchContacts by a full name.
    SearchName,
    /// SearchContacts by a first name alone (each starts a twenty-fourth of the names).
    SearchFirstName,
    /// SearchContacts by a surname alone (a later word; O'Brien with punctuation).
    SearchSurname,
    /// SearchContacts by a typo of a first name alone (its last letter doubled: "Ameliaa").
    SearchTypo,
    /// CreateContact from an accepted chat whose identity another contact holds (relink);
    /// only the create is timed.
    CreateRelink,
    /// WatchAgentSession fan-out: streams held, offers generated; commit-to-delivery latency.
    Watch,
}

/// Options of `run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long (seconds, or with s/m suffix).
    #[arg(long, default_value = "30s")]
    duration: String,
    /// Also replay the scenario's SQL with pgbench and print the ratio.
    #[arg(long)]
    pgbench: bool,
    /// Watch: streams to hold.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Watch: events per second to generate (each offer makes two).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Skip the VACUUM ANALYZE run before measuring when the database has autovacuum off.
    #[arg(long)]
    no_vacuum: bool,
}

/// When the database does not vacuum itself (autovacuum off, as on the CI machines), vacuums
/// and analyzes it before measuring, as autovacuum would have between runs: otherwise each run
/// measures the dead rows and unset visibility maps the previous ones left.
fn vacuum_if_needed(state: &State) {
    let psql = |sql: &str| {
        std::process::Command::new("psql")
            .args(["-Atq", "-c", sql])
            .arg(&state.database_url)
            .output()
    };
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, mult) = if let Some(m) = s.strip_suffix('m') {
        (m, 60)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1)
    };
    n.parse::<u64>()
        .map(|n| Duration::from_secs(n * mult))
        .map_err(|_| format!("bad duration {s:?} (for example 30s or 2m)"))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    errors: AtomicU64,
}

struct Ctx {
    state: State,
    routing: Client,
    crm: Client,
    agents: Vec<Client>,
    stamp: u64,
    /// ClientInfo: offered interactions and the index of their agent.
    offered: Vec<(String, usize)>,
    /// Interactions this run opened, closed once it is measured.
    opened: Mutex<Vec<String>>,
}

impl Ctx {
    fn opened(&self, iid: &str) {
        if let Ok(mut v) = self.opened.lock() {
            v.push(iid.to_owned());
        }
    }
}

/// Why `watch --pgbench` has no ratio.
const NO_WATCH_FLOOR: &str = "pgbench: none for watch, which measures delivery latency at a \
fixed rate, not throughput; the SQL behind each event, the offer transaction, is floored by \
`run offer --pgbench`";

/// Closes the interactions a run opened (untimed), as routing would when they end, so that
/// one run's backlog of open interactions does not weigh on the next.
async fn close_all(routing: &Client, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let started = Instant::now();
    let total = ids.len();
    let queue = Arc::new(Mutex::new(ids));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let routing = routing.clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u64;
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(iid) = next else { break };
                if routing.close_interaction(iid).await.is_err() {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap_or(0);
    }
    eprintln!(
        "closed the {total} interactions this run opened in {:.1} s ({failed} failed)",
        started.elapsed().as_secs_f64()
    );
}

fn random_index(state: &State) -> u64 {
    rand::rng().random_range(0..state.contacts.max(1))
}

async fn op(ctx: &Ctx, scenario: Scenario, worker: usize, n: u64) -> Result<Duration, SdkError> {
    let started = Instant::now();
    match scenario {
        Scenario::Offer => {
            let i = random_index(&ctx.state);
            let agent = rand::rng().random_range(0..ctx.agents.len());
            let iid = format!("of-{}-{worker}-{n}", ctx.stamp);
            let req = call(&iid, data::written(i, n), ctx.state.agents[agent].id);
            ctx.routing.offer_interaction(req).await?;
            ctx.opened(&iid);
        }
        Scenario::ClientInfo => {
            let k = rand::rng().random_range(0..ctx.offered.len());
            let (iid, agent) = &ctx.offered[k];
            ctx.agents[*agent].get_client_info(iid.clone()).await?;
        }
        Scenario::SearchDestination => {
            let i = random_index(&ctx.state);
            ctx.crm
                .search_contacts(pb::SearchContactsRequest {
                    destination: data::written(i, n),
                    ..Default::default()
                })
                .await?;
        }
        Scenario::SearchAttribute => {
            let i = random_index(&ctx.state);
            ctx.crm
                .search_contacts(pb::SearchContactsRequest {
                    attributes: vec![pb::AttributeCondition {
                        key: "crm_id".into(),
                        value: data::crm_id(i),
                    }],
                    ..Default::default()
                })
                .await?;
        }
        Scenario::SearchName
        | Scenario::SearchFirstName
        | Scenario::SearchSurname
        | Scenario::SearchTypo => {
            let i = random_index(&ctx.state);
            let name = match scenario {
                Scenario::SearchFirstName => data::first_name(i).to_owned(),
                Scenario::SearchSurname => data::surname(i).to_owned(),
                Scenario::SearchTypo => data::first_name_typo(i),
                _ => data::name(i),
            };
            ctx.crm
                .search_contacts(pb::SearchContactsRequest {
                    name,
                    ..Default::default()
                })
                .await?;
        }
        Scenario::CreateRelink => {
            let i = random_index(&ctx.state) / 3 * 3;
            let identity = data::identity(i).unwrap_or_default();
            let agent = worker % ctx.agents.len();
            let agent_id = ctx.state.agents[agent].id;
            let iid = format!("cr-{}-{worker}-{n}", ctx.stamp);
            ctx.routing
                .offer_interaction(chat(&iid, "telegram", identity, data::name(i), agent_id))
                .await?;
            ctx.opened(&iid);
            ctx.routing.accept_interaction(&iid, agent_id).await?;
            let started = Instant::now();
            ctx.agents[agent]
                .create_contact(pb::CreateContactRequest {
                    request_id: iid.clone(),
                    interaction_id: iid,
                    display_name: data::name(i),
                    ..Default::default()
                })
                .await?;
            return Ok(started.elapsed());
        }
        Scenario::Watch => unreachable!("watch has its own driver"),
    }
    Ok(started.elapsed())
}

fn code_name(e: &SdkError) -> String {
    format!("{:?}", e.code())
}

fn print_row(label: &str, ops: u64, secs: f64, h: &Histogram<u64>) {
    let ms = |v: u64| v as f64 / 1000.0;
    println!(
        "{label:<20} {ops:>9} ops {:>10.1} ops/s   p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms",
        ops as f64 / secs,
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    );
}

fn progress(
    counters: Arc<Counters>,
    started: Instant,
    label: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ops = counters.ops.load(Ordering::Relaxed);
            eprint!(
                "\r[{:>4}s] {label}: {:>8} {}/s, {} errors   ",
                started.elapsed().as_secs(),
                ops - last,
                if label == "watch" { "events" } else { "ops" },
                counters.errors.load(Ordering::Relaxed)
            );
            last = ops;
        }
    })
}

async fn connect(target: &Target, token: &str) -> Result<Client, String> {
    target
        .builder(token)
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// Runs `run`.
pub async fn run(target: &Target, state_path: &Path, args: RunArgs) -> Result<(), String> {
    let url = target.url.as_str();
    let state = State::load(state_path)?;
    let duration = parse_duration(&args.duration)?;
    let routing = connect(target, &state.routing.token).await?;
    let crm = connect(target, &state.crm.token).await?;
    let mut agents = Vec::with_capacity(state.agents.len());
    for a in &state.agents {
        agents.push(
            routing
                .with_token(Some(&a.token))
                .map_err(|e| e.to_string())?,
        );
    }
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as u64;
    println!(
        "scenario {:?}, concurrency {}, {} s, {} contacts, server {url}",
        args.scenario,
        args.concurrency,
        duration.as_secs(),
        state.contacts
    );
    if !args.no_vacuum {
        vacuum_if_needed(&state);
    }
    if args.scenario == Scenario::Watch {
        if args.pgbench {
            println!("{NO_WATCH_FLOOR}");
        }
        return watch(target, &state, &routing, &args, duration, stamp).await;
    }
    let mut offered = Vec::new();
    if args.scenario == Scenario::ClientInfo {
        let count = (args.concurrency * 8).max(32);
        for k in 0..count {
            let agent = k % agents.len();
            let iid = format!("ci-{stamp}-{k}");
            routing
                .offer_interaction(call(
                    &iid,
                    data::written(random_index(&state), k as u64),
                    state.agents[agent].id,
                ))
                .await
                .map_err(|e| format!("setup offer: {e}"))?;
            offered.push((iid, agent));
        }
    }
    let ctx = Arc::new(Ctx {
        state,
        routing,
        crm,
        agents,
        stamp,
        opened: Mutex::new(offered.iter().map(|(iid, _)| iid.clone()).collect()),
        offered,
    });
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let ticker = progress(counters.clone(), started, "rpc");
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let ctx = ctx.clone();
        let counters = counters.clone();
        let scenario = args.scenario;
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                match op(&ctx, scenario, worker, n).await {
                    Ok(d) => {
                        let _ = h.record(d.as_micros() as u64);
                        counters.ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        *errors.entry(code_name(&e)).or_default() += 1;
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (h, errors)
        }));
    }
    let mut total = histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let (h, e) = t.await.map_err(|e| e.to_string())?;
        let _ = total.add(&h);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    ticker.abort();
    eprintln!();
    let secs = started.elapsed().as_secs_f64();
    let ops = total.len();
    print_row("rpc", ops, secs, &total);
    if !errors.is_empty() {
        println!("errors: {errors:?}");
    }
    if args.pgbench {
        match floor::script(args.scenario) {
            Some(script) => {
                if !args.no_vacuum {
                    vacuum_if_needed(&ctx.state);
                }
                let vars = [
                    ("stamp", ctx.stamp.to_string()),
                    ("offered", ctx.offered.len().max(1).to_string()),
                ];
                let tps = floor::pgbench(&ctx.state, &script, &vars, args.concurrency, duration)?;
                println!("pgbench (same SQL)   {tps:>25.1} tx/s");
                println!("ratio rpc/pgbench    {:>25.2}", (ops as f64 / secs) / tps);
            }
            None => println!("{NO_WATCH_FLOOR}"),
        }
    }
    let opened = ctx
        .opened
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    close_all(&ctx.routing, opened).await;
    Ok(())
}

async fn watch(
    target: &Target,
    state: &State,
    routing: &Client,
    args: &RunArgs,
    duration: Duration,
    stamp: u64,
) -> Result<(), String> {
    let latency = Arc::new(Mutex::new(histogram()));
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
                        let _ = h.record(micros.max(1));
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
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Instant::now();
    let ticker = progress(counters.clone(), started, "watch");
    let offers_per_sec = (args.rate / 2).max(1);
    let generators = args.concurrency.max(1);
    let per_gen = Duration::from_secs_f64(generators as f64 / offers_per_sec as f64);
    let deadline = started + duration;
    let mut gens = Vec::new();
    for g in 0..generators {
        let routing = routing.clone();
        let ids: Vec<i64> = state.agents.iter().take(watched).map(|a| a.id).collect();
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
                let iid = format!("wa-{stamp}-{g}-{n}");
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
    let secs = started.elapsed().as_secs_f64();
    for r in readers {
        r.abort();
    }
    let h = latency.lock().map_err(|_| "poisoned".to_owned())?.clone();
    println!(
        "offers generated: {offers} ({:.0}/s), failed: {failed}",
        offers as f64 / secs
    );
    print_row("commit-to-delivery", h.len(), secs, &h);
    let created = created
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    close_all(routing, created).await;
    Ok(())
}
