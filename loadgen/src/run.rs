//! `run SCENARIO`: drives one RPC mix and reports throughput, latency percentiles
//! (HdrHistogram) and errors by code, in one of three ways:
//!
//! - closed loop (`--concurrency N`, the default): N clients each waiting for its answer; with
//!   `--pgbench`, the same SQL replayed by pgbench at the same concurrency and duration, and
//!   the ratio;
//! - open loop (`--rate N`): N requests per second on a fixed schedule, latency from each
//!   request's intended start (see [`crate::engine`]); `--sweep R1,R2,...` runs each rate in
//!   turn and, with `--p99-limit`, finds where p99 crosses the limit;
//! - two domains (`--bulk-domain NAME`): the scenario alone (baseline), then again while a
//!   bulk update runs flat out in another domain (loaded), to see whether one tenant's writes
//!   slow another's (see [`crate::bulk`]).
//!
//! `--json FILE` writes everything measured ([`crate::report::Report`]); `--chart FILE.svg` draws
//! a sweep's latency against the rate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use client_info_sdk::interactions::{call, chat};
use client_info_sdk::{Client, SdkError, pb};
use rand::Rng as _;

use crate::Target;
use crate::bulk::{self, LockSampler};
use crate::data;
use crate::delivery;
use crate::engine::{self, Counters, OpenLoop, Recorder};
use crate::floor;
use crate::report::{
    self, Crossing, Floor, Interference, Load, LockWaits, Percentiles, Phase, Report, Settings,
};
use crate::seed::{DEFAULT_DOMAIN, State, StateFile};

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
    /// closed loop times only the create, open loop the whole offer-accept-create cycle from
    /// its intended start.
    CreateRelink,
    /// WatchAgentSession fan-out: streams held, offers generated; commit-to-delivery latency.
    Watch,
}

impl Scenario {
    /// The name on the command line.
    fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_else(|| format!("{self:?}"))
    }

    /// Whether it writes (and so leaves dead rows for the next measurement to vacuum).
    fn writes(self) -> bool {
        matches!(
            self,
            Scenario::Offer | Scenario::CreateRelink | Scenario::Watch
        )
    }
}

/// Closed-loop clients when `--concurrency` is not given (watch: offer generators).
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Open loop: requests in flight at most when `--max-in-flight` is not given. Far above what
/// the server answers at once on this machine, so that it only bounds the harness's memory
/// when the server stalls.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// Open loop with `--pgbench`: the PostgreSQL connections the SQL is replayed over (pgbench's
/// `-c` in the closed-loop runs).
pub const FLOOR_CONNECTIONS: usize = 16;
/// Watch: events per second when `--rate` is not given.
pub const DEFAULT_WATCH_RATE: u64 = 1000;
/// Two-domain run: bulk clients when `--bulk-clients` is not given.
pub const DEFAULT_BULK_CLIENTS: usize = 4;
/// Two-domain run: how long the bulk load runs before the loaded phase is measured.
const BULK_WARMUP: Duration = Duration::from_secs(2);

/// The rates of `--sweep`, in increasing order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rates(pub Vec<u64>);

/// Options of `run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Closed loop: concurrent clients, each sending its next request when the previous one
    /// answers [default: 16]. Watch: offer generators.
    #[arg(long, value_parser = parse_count)]
    concurrency: Option<usize>,
    /// How long (seconds, or with an s/m suffix: 30, 30s, 2m); with --sweep, each rate; with
    /// --bulk-domain, each phase.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Closed loop: also replay the scenario's SQL with pgbench at the same concurrency and
    /// print the ratio. Open loop (reads): also replay it at each rate on the same fixed
    /// schedule, straight to PostgreSQL over 16 connections, and print its latency (pgbench's
    /// own `-R` draws Poisson arrivals, which would not compare).
    #[arg(long)]
    pgbench: bool,
    /// Watch: streams to hold.
    #[arg(long, default_value_t = 1000, value_parser = parse_count)]
    streams: usize,
    /// Open loop: requests per second, sent on a fixed schedule whatever the answers, latency
    /// measured from each request's intended start. Watch: events per second [default: 1000]
    /// (each offer makes two).
    #[arg(long, value_parser = parse_rate, conflicts_with = "sweep")]
    rate: Option<u64>,
    /// Open loop at each of these rates in turn (comma-separated requests per second, for
    /// example 500,1000,2000), --duration each.
    #[arg(long, value_parser = parse_sweep)]
    sweep: Option<Rates>,
    /// With --rate or --sweep: the p99 to compare with (for example 3ms, 2.5ms, 500us, 1s);
    /// a sweep reports the rate where p99 first exceeds it.
    #[arg(long, value_parser = parse_latency)]
    p99_limit: Option<Duration>,
    /// Open loop: requests in flight at most [default: 1000]. A request due while the cap is
    /// full waits for a slot, is still timed from its intended start, and is counted.
    #[arg(long, value_parser = parse_count)]
    max_in_flight: Option<usize>,
    /// Write everything measured (settings, each phase's throughput, errors and percentiles)
    /// to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// With --sweep: draw latency against rate into this SVG file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// The state file's domain to run in: a name given to `seed --domain` [default: the one
    /// `seed` made without --domain].
    #[arg(long)]
    domain: Option<String>,
    /// Two-domain run: measure the scenario alone, then while a bulk update (a CRM sync:
    /// SearchContacts by crm_id then UpdateContact, contact after contact) runs in this
    /// domain of the state file.
    #[arg(long)]
    bulk_domain: Option<String>,
    /// Two-domain run: bulk clients, each editing flat out [default: 4]; with --bulk-rate, the
    /// bulk's requests in flight at most.
    #[arg(long, value_parser = parse_count)]
    bulk_clients: Option<usize>,
    /// Two-domain run: pace the bulk at this many edits per second instead of flat out.
    #[arg(long, value_parser = parse_rate)]
    bulk_rate: Option<u64>,
    /// Before measuring, load the server for this long (the first rate of a sweep, or the
    /// concurrency) without recording: connections opened, statements prepared, caches warm,
    /// so that the first phase does not pay for them.
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Skip the VACUUM ANALYZE run before measuring when the database has autovacuum off.
    #[arg(long)]
    no_vacuum: bool,
    /// Closed loop with --pgbench: alternate the RPC run and the pgbench run this many times
    /// and give the median of the rounds' ratios [default: 1]. A shared machine's speed can
    /// drift by half within minutes, and then one RPC run against one pgbench run a minute
    /// later says more about the drift than about the server.
    #[arg(long, value_parser = parse_count)]
    rounds: Option<usize>,
    /// HTTP/2 connections the requests are spread over, worker `w` (open loop: request `k`)
    /// on connection `w % N` [default: 1, a back-end service's one channel]. One per client
    /// (`--connections 16` at `--concurrency 16`) is what 16 agent desktops would open; on two
    /// shared cores it costs more CPU per request (less batching of frames and wake-ups).
    #[arg(long, value_parser = parse_count)]
    connections: Option<usize>,
}

/// Parses a duration of whole seconds: `30`, `30s` or `2m`, more than 0.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (n, mult) = if let Some(m) = t.strip_suffix('m') {
        (m, 60)
    } else {
        (t.strip_suffix('s').unwrap_or(t), 1)
    };
    let secs = n
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("bad duration {s:?} (for example 30s or 2m)"))?;
    if secs == 0 {
        return Err("must be at least 1s".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Parses a latency: a number with a unit `us`, `ms` or `s` (`2.5ms`, `500us`), more than 0.
pub fn parse_latency(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("bad latency {s:?} (a number and us, ms or s: 10ms, 2.5ms, 500us)");
    let (n, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let v: f64 = n.trim().parse().map_err(|_| bad())?;
    let secs = v * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(format!("{s:?}: must be more than 0 and at most 1 hour"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a rate in requests per second: a whole number from 1 to 1,000,000.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    match s.trim().replace('_', "").parse::<u64>() {
        Ok(r) if (1..=1_000_000).contains(&r) => Ok(r),
        Ok(_) => Err(format!("{s:?}: a rate is 1 to 1000000 requests per second")),
        Err(_) => Err(format!(
            "{s:?} is not a rate (a whole number of requests per second)"
        )),
    }
}

/// Parses `--sweep`: comma-separated rates, sorted and each kept once.
pub fn parse_sweep(s: &str) -> Result<Rates, String> {
    let mut rates = s
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(parse_rate)
        .collect::<Result<Vec<_>, _>>()?;
    if rates.is_empty() {
        return Err("give at least one rate, for example 500,1000,2000".to_owned());
    }
    rates.sort_unstable();
    rates.dedup();
    Ok(Rates(rates))
}

/// Parses a count (clients, streams, requests in flight): at least 1.
fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?}: must be a whole number, at least 1")),
    }
}

/// How the run loads the server, once the flags are checked against each other.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// One closed-loop run.
    Closed(usize),
    /// Open loop at each rate (one for `--rate`).
    Open(Vec<u64>),
}

/// Checks the flags against each other (the combinations clap cannot express), so that a
/// contradiction is refused before anything runs.
fn plan(args: &RunArgs) -> Result<Plan, String> {
    let open = args.rate.is_some() || args.sweep.is_some();
    let watch = args.scenario == Scenario::Watch;
    if args.pgbench && open && args.scenario.writes() {
        return Err(
            "--pgbench with --rate or --sweep replays a read's SQL on the same schedule; a write's floor is closed loop: use --concurrency"
                .to_owned(),
        );
    }
    if args.rounds.is_some_and(|r| r > 1) && (open || watch || !args.pgbench) {
        return Err(
            "--rounds alternates closed-loop runs with their pgbench floor: use it with --pgbench and --concurrency"
                .to_owned(),
        );
    }
    if args.concurrency.is_some() && open && !watch {
        return Err("--concurrency is the closed-loop load; with --rate or --sweep the rate sets the load (--max-in-flight caps requests in flight)".to_owned());
    }
    if !open && !watch {
        for (given, flag) in [
            (args.max_in_flight.is_some(), "--max-in-flight"),
            (args.p99_limit.is_some(), "--p99-limit"),
        ] {
            if given {
                return Err(format!(
                    "{flag} applies to open-loop runs: give --rate or --sweep"
                ));
            }
        }
    }
    if watch && args.warmup.is_some() {
        return Err("--warmup: watch opens its streams before it measures; run a short watch first to warm up".to_owned());
    }
    if args.chart.is_some() && args.sweep.is_none() {
        return Err("--chart draws latency against rate: give --sweep".to_owned());
    }
    if args.bulk_domain.is_none() && (args.bulk_clients.is_some() || args.bulk_rate.is_some()) {
        return Err("--bulk-clients and --bulk-rate set the bulk load of --bulk-domain".to_owned());
    }
    if args.bulk_domain.is_some() {
        if watch {
            return Err("--bulk-domain measures a scenario's RPCs, not watch delivery".to_owned());
        }
        if args.sweep.is_some() {
            return Err(
                "--bulk-domain runs one rate (or one concurrency): give --rate, not --sweep"
                    .to_owned(),
            );
        }
        if args.pgbench {
            return Err("--bulk-domain and --pgbench: run the floor on its own".to_owned());
        }
    }
    if watch {
        return Ok(Plan::Open(match &args.sweep {
            Some(Rates(r)) => r.clone(),
            None => vec![args.rate.unwrap_or(DEFAULT_WATCH_RATE)],
        }));
    }
    Ok(match (&args.sweep, args.rate) {
        (Some(Rates(r)), _) => Plan::Open(r.clone()),
        (None, Some(r)) => Plan::Open(vec![r]),
        (None, None) => Plan::Closed(args.concurrency.unwrap_or(DEFAULT_CONCURRENCY)),
    })
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

struct Ctx {
    state: State,
    /// The state file's name of the domain (`default` or a `seed --domain` name).
    domain: String,
    /// Routing on the first connection: the setup and the closing of interactions.
    routing: Client,
    /// One per connection: worker `w` sends on `lanes[w % len]`.
    lanes: Vec<Lane>,
    /// Agent `a`'s client, on connection `a % lanes.len()`.
    agents: Vec<Client>,
    stamp: u64,
    /// Numbers the requests of the run, across phases, so that ids never repeat.
    seq: AtomicU64,
    /// ClientInfo: offered interactions and the index of their agent.
    offered: Vec<(String, usize)>,
    /// Interactions the scenario's requests opened, closed after each phase (the offered
    /// ones above, at the end of the run).
    opened: Mutex<Vec<String>>,
}

/// One connection and the callers that send on it.
struct Lane {
    routing: Client,
    crm: Client,
}

impl Ctx {
    fn lane(&self, worker: usize) -> &Lane {
        &self.lanes[worker % self.lanes.len()]
    }

    fn opened(&self, iid: &str) {
        if let Ok(mut v) = self.opened.lock() {
            v.push(iid.to_owned());
        }
    }

    fn take_opened(&self) -> Vec<String> {
        self.opened
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// The floor scripts' variables beyond the state's: the run's stamp and the number of
    /// interactions offered for GetClientInfo.
    fn floor_vars(&self) -> [(&'static str, String); 2] {
        [
            ("stamp", self.stamp.to_string()),
            ("offered", self.offered.len().max(1).to_string()),
        ]
    }

    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Why `watch --pgbench` has no ratio.
const NO_WATCH_FLOOR: &str = "pgbench: none for watch, which measures delivery latency at a \
fixed rate, not throughput; the SQL behind each event, the offer transaction, is floored by \
`run offer --pgbench`";

/// Before a phase that must start as a run of its own would: the interactions the phases
/// before opened are closed and, for a writing scenario, their dead rows vacuumed.
async fn fresh_start(ctx: &Ctx, args: &RunArgs) {
    close_all(&ctx.routing, ctx.take_opened()).await;
    if args.scenario.writes() && !args.no_vacuum {
        vacuum_if_needed(&ctx.state);
    }
}

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
            ctx.lane(worker).routing.offer_interaction(req).await?;
            ctx.opened(&iid);
        }
        Scenario::ClientInfo => {
            let k = rand::rng().random_range(0..ctx.offered.len());
            let (iid, agent) = &ctx.offered[k];
            ctx.agents[*agent].get_client_info(iid.clone()).await?;
        }
        Scenario::SearchDestination => {
            let i = random_index(&ctx.state);
            ctx.lane(worker)
                .crm
                .search_contacts(pb::SearchContactsRequest {
                    destination: data::written(i, n),
                    ..Default::default()
                })
                .await?;
        }
        Scenario::SearchAttribute => {
            let i = random_index(&ctx.state);
            ctx.lane(worker)
                .crm
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
            ctx.lane(worker)
                .crm
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
            let routing = &ctx.lane(worker).routing;
            routing
                .offer_interaction(chat(&iid, "telegram", identity, data::name(i), agent_id))
                .await?;
            ctx.opened(&iid);
            routing.accept_interaction(&iid, agent_id).await?;
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

/// Prints a progress line per second until aborted: answers and errors of the last second,
/// requests in flight in open loop, and the bulk load's edits when there is one.
fn progress(
    counters: Arc<Counters>,
    label: String,
    open: bool,
    bulk: Option<Arc<Counters>>,
) -> tokio::task::JoinHandle<()> {
    let started = Instant::now();
    tokio::spawn(async move {
        let (mut last, mut last_bulk) = (0, 0);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ops = counters.ops.load(Ordering::Relaxed);
            let mut line = format!(
                "\r[{:>4}s] {label}: {:>8} {}/s, {} errors",
                started.elapsed().as_secs(),
                ops - last,
                if label == "watch" { "events" } else { "ops" },
                counters.errors.load(Ordering::Relaxed)
            );
            if open {
                let n = counters.in_flight.load(Ordering::Relaxed);
                line.push_str(&format!(", {n} in flight"));
            }
            if let Some(b) = &bulk {
                let edits = b.ops.load(Ordering::Relaxed);
                line.push_str(&format!(
                    "; bulk {} edits/s, {} errors",
                    edits - last_bulk,
                    b.errors.load(Ordering::Relaxed)
                ));
                last_bulk = edits;
            }
            eprint!("{line}   ");
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
            connections: (args.scenario != Scenario::Watch).then_some(connections),
            rounds: args
                .pgbench
                .then(|| args.rounds.unwrap_or(1))
                .filter(|_| matches!(plan, Plan::Closed(_)) && args.scenario != Scenario::Watch),
        },
        results: Vec::new(),
        crossing: None,
        pgbench: None,
        floor: Vec::new(),
        interference: None,
    };
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

fn join(rates: &[u64]) -> String {
    rates
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the plan's phases (and the floor) into `report`.
async fn measure_all(
    target: &Target,
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    plan: &Plan,
    bulk_state: Option<State>,
    report: &mut Report,
) -> Result<(), String> {
    let max_in_flight = args.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    let loads: Vec<Load> = match plan {
        Plan::Closed(c) => vec![Load::Closed(*c)],
        Plan::Open(rates) => rates.iter().map(|r| Load::Open(*r)).collect(),
    };
    if let (Some(warmup), Some(load)) = (args.warmup, loads.first()) {
        let phase = measure(
            ctx,
            args.scenario,
            *load,
            warmup,
            max_in_flight,
            "warm-up",
            None,
        )
        .await?;
        println!(
            "warm-up: {} ok, {} errors in {:.0} s (not recorded)",
            phase.ok,
            phase.error_count(),
            phase.seconds
        );
        fresh_start(ctx, args).await;
    }
    if let (Some(bulk), [load]) = (bulk_state, loads.as_slice()) {
        let (phases, interference) = two_domain(target, ctx, args, *load, &bulk).await?;
        if let Some(limit) = args.p99_limit {
            // The baseline and the loaded phase; the bulk's own row comes last.
            for p in phases.iter().take(2) {
                let over = p.latency_ms.p99 > limit.as_secs_f64() * 1000.0;
                println!(
                    "{}: p99 {:.2} ms, {} the {:?} limit",
                    p.label,
                    p.latency_ms.p99,
                    if over { "over" } else { "within" },
                    limit
                );
            }
        }
        report.results = phases;
        report.interference = Some(interference);
        return Ok(());
    }
    if let (true, [Load::Closed(concurrency)]) = (args.pgbench, loads.as_slice()) {
        return closed_with_floor(ctx, args, *concurrency, report).await;
    }
    for (i, load) in loads.iter().enumerate() {
        if i > 0 {
            // Each rate starts as a run of its own would: no backlog of open interactions,
            // no dead rows of the rate before.
            fresh_start(ctx, args).await;
        }
        let label = match load {
            Load::Closed(_) => "rpc".to_owned(),
            Load::Open(r) => format!("rate {r}/s"),
        };
        let phase = measure_printed(ctx, args, *load, &label).await?;
        report.results.push(phase);
    }
    if let Some(limit) = args.p99_limit {
        let crossing = Crossing::find(&report.results, limit);
        if loads.len() > 1 {
            crossing.print();
        } else if let Some(p) = report.results.first() {
            println!(
                "p99 {:.2} ms: {} the {} ms limit",
                p.latency_ms.p99,
                if crossing.first_over.is_some() {
                    "over"
                } else {
                    "within"
                },
                crossing.limit_ms
            );
        }
        report.crossing = Some(crossing);
    }
    if let (true, Plan::Open(rates)) = (args.pgbench, plan) {
        open_floor(ctx, args, rates, report).await?;
    }
    Ok(())
}

/// A closed-loop run with its pgbench floor: `--rounds` times the RPC run then pgbench, each
/// round's ratio printed, the median kept.
async fn closed_with_floor(
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    concurrency: usize,
    report: &mut Report,
) -> Result<(), String> {
    let Some(script) = floor::script(args.scenario) else {
        println!("{NO_WATCH_FLOOR}");
        return Ok(());
    };
    let vars = ctx.floor_vars();
    let rounds = args.rounds.unwrap_or(1);
    let mut floors = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        if round > 1 {
            fresh_start(ctx, args).await;
        }
        let label = if rounds == 1 {
            "rpc".to_owned()
        } else {
            format!("rpc {round}/{rounds}")
        };
        let phase = measure_printed(ctx, args, Load::Closed(concurrency), &label).await?;
        if !args.no_vacuum {
            vacuum_if_needed(&ctx.state);
        }
        let (tps, latency) =
            floor::pgbench(&ctx.state, &script, &vars, concurrency, args.duration)?;
        let ratio = phase.throughput / tps;
        println!("pgbench (same SQL)   {tps:>25.1} tx/s");
        let latency_ms = latency.as_ref().map(Percentiles::of);
        if let Some(l) = &latency_ms {
            println!(
                "pgbench latency      {:>25}   p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms",
                "", l.p50, l.p90, l.p99, l.max
            );
        }
        println!("ratio rpc/pgbench    {ratio:>25.2}");
        report.results.push(phase);
        floors.push(Floor {
            tps,
            ratio,
            latency_ms,
            rounds: Vec::new(),
        });
    }
    let mut order: Vec<usize> = (0..floors.len()).collect();
    order.sort_by(|&a, &b| floors[a].ratio.total_cmp(&floors[b].ratio));
    let median = floors[order[order.len() / 2]].clone();
    if rounds > 1 {
        let ratios: Vec<String> = floors.iter().map(|f| format!("{:.2}", f.ratio)).collect();
        println!(
            "ratio rpc/pgbench, median of {rounds} rounds: {:.2} (rounds: {})",
            median.ratio,
            ratios.join(", ")
        );
    }
    report.pgbench = Some(Floor {
        rounds: if rounds > 1 { floors } else { Vec::new() },
        ..median
    });
    Ok(())
}

/// [`measure`] of the run's scenario for its `--duration` under `load`.
async fn measure_run(
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    load: Load,
    label: &str,
    bulk: Option<Arc<Counters>>,
) -> Result<Phase, String> {
    let max_in_flight = args.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    measure(
        ctx,
        args.scenario,
        load,
        args.duration,
        max_in_flight,
        label,
        bulk,
    )
    .await
}

/// [`measure_run`] with its row printed.
async fn measure_printed(
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    load: Load,
    label: &str,
) -> Result<Phase, String> {
    let phase = measure_run(ctx, args, load, label, None).await?;
    phase.print();
    Ok(phase)
}

/// Measures `scenario` for `duration` under `load`, with a progress line.
async fn measure(
    ctx: &Arc<Ctx>,
    scenario: Scenario,
    load: Load,
    duration: Duration,
    max_in_flight: usize,
    label: &str,
    bulk: Option<Arc<Counters>>,
) -> Result<Phase, String> {
    let counters = Arc::new(Counters::default());
    let open = matches!(load, Load::Open(_));
    let ticker = progress(counters.clone(), label.to_owned(), open, bulk);
    let measured = match load {
        Load::Closed(concurrency) => {
            let ctx = ctx.clone();
            engine::closed_loop(concurrency, duration, counters, move |worker, _| {
                let ctx = ctx.clone();
                async move {
                    let n = ctx.next();
                    op(&ctx, scenario, worker, n)
                        .await
                        .map_err(|e| code_name(&e))
                }
            })
            .await
        }
        Load::Open(rate) => {
            let ctx = ctx.clone();
            let load = OpenLoop {
                rate,
                duration,
                max_in_flight,
            };
            Ok(engine::open_loop(load, counters, move |_| {
                let ctx = ctx.clone();
                async move {
                    let n = ctx.next();
                    // Spread the cycles of create-relink over agents as the closed loop's
                    // workers do.
                    let worker = (n % 64) as usize;
                    op(&ctx, scenario, worker, n)
                        .await
                        .map(|_| ())
                        .map_err(|e| code_name(&e))
                }
            })
            .await)
        }
    };
    ticker.abort();
    eprintln!();
    let (recorder, started, ended) = measured?;
    Ok(Phase::new(
        label,
        &ctx.domain,
        load,
        &recorder,
        started,
        ended,
    ))
}

/// The open-loop floor: the scenario's SQL replayed straight to PostgreSQL at each rate, on
/// the same schedule, with the same warm-up (see `replay.rs`).
async fn open_floor(
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    rates: &[u64],
    report: &mut Report,
) -> Result<(), String> {
    let script = floor::script(args.scenario)
        .ok_or_else(|| format!("{} has no SQL floor", args.scenario.name()))?;
    let script = crate::replay::parse(&floor::typed(&script))?;
    let vars = ctx.floor_vars();
    let max_in_flight = args.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    for (i, rate) in rates.iter().enumerate() {
        if !args.no_vacuum {
            vacuum_if_needed(&ctx.state);
        }
        eprintln!("replaying the SQL at {rate}/s over {FLOOR_CONNECTIONS} connections ...");
        let load = OpenLoop {
            rate: *rate,
            duration: args.duration,
            max_in_flight,
        };
        let warmup = if i == 0 { args.warmup } else { None };
        let (recorder, started, ended) =
            crate::replay::open_loop(&ctx.state, &script, &vars, FLOOR_CONNECTIONS, load, warmup)
                .await?;
        let phase = Phase::new(
            format!("sql {rate}/s"),
            &ctx.domain,
            Load::Open(*rate),
            &recorder,
            started,
            ended,
        );
        phase.print();
        report.floor.push(phase);
    }
    if let Some(limit) = args.p99_limit {
        let crossing = Crossing::find(&report.floor, limit);
        for p in &report.floor {
            println!(
                "{}: the SQL alone has p99 {:.2} ms, {} the {:?} limit",
                p.label,
                p.latency_ms.p99,
                if p.latency_ms.p99 > crossing.limit_ms {
                    "over"
                } else {
                    "within"
                },
                limit
            );
        }
    }
    Ok(())
}

/// [`measure`] with the lock waits of the measured domain's database sampled meanwhile.
async fn sampled(
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    load: Load,
    label: &str,
    bulk: Option<Arc<Counters>>,
) -> (Result<Phase, String>, LockWaits) {
    let sampler = LockSampler::start(&ctx.state);
    let phase = measure_run(ctx, args, load, label, bulk).await;
    (phase, sampler.stop().await)
}

/// The two-domain run: the scenario alone, then with the bulk load running in `bulk`'s
/// domain; returns the baseline, loaded and bulk phases and their comparison.
async fn two_domain(
    target: &Target,
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    load: Load,
    bulk: &State,
) -> Result<(Vec<Phase>, Interference), String> {
    let bulk_name = args.bulk_domain.clone().unwrap_or_default();
    println!("baseline: {} alone", args.scenario.name());
    let (baseline, baseline_locks) = sampled(ctx, args, load, "baseline", None).await;
    let baseline = baseline?;
    baseline.print();
    close_all(&ctx.routing, ctx.take_opened()).await;
    if !args.no_vacuum {
        vacuum_if_needed(&ctx.state);
    }

    println!(
        "loaded: {} while domain {bulk_name} is bulk-updated",
        args.scenario.name()
    );
    let crm = connect(target, &bulk.crm.token).await?;
    let bulk_counters = Arc::new(Counters::default());
    let clients = args.bulk_clients.unwrap_or(DEFAULT_BULK_CLIENTS);
    let contacts = bulk.contacts.max(1);
    let stamp = ctx.stamp;
    let bulk_for = BULK_WARMUP + args.duration;
    let bulk_load = match args.bulk_rate {
        Some(r) => Load::Open(r),
        None => Load::Closed(clients),
    };
    let bulk_task = {
        let counters = bulk_counters.clone();
        tokio::spawn(async move {
            match bulk_load {
                Load::Open(rate) => {
                    let load = OpenLoop {
                        rate,
                        duration: bulk_for,
                        max_in_flight: clients,
                    };
                    Ok(engine::open_loop(load, counters, move |k| {
                        let crm = crm.clone();
                        async move { bulk::edit(&crm, k % contacts, stamp).await }
                    })
                    .await)
                }
                Load::Closed(clients) => {
                    // Client w syncs contacts w, w + clients, ...: no two edit one contact.
                    engine::closed_loop(clients, bulk_for, counters, move |worker, n| {
                        let crm = crm.clone();
                        let i = (worker as u64 + (n - 1) * clients as u64) % contacts;
                        async move {
                            let started = Instant::now();
                            bulk::edit(&crm, i, stamp).await.map(|()| started.elapsed())
                        }
                    })
                    .await
                }
            }
        })
    };
    tokio::time::sleep(BULK_WARMUP).await;
    let (loaded, loaded_locks) = sampled(ctx, args, load, "loaded", Some(bulk_counters)).await;
    let bulk_measured = bulk_task.await.map_err(|e| e.to_string())?;
    let loaded = loaded?;
    let (recorder, started, ended) = bulk_measured?;
    let bulk_phase = Phase::new("bulk", &bulk_name, bulk_load, &recorder, started, ended);
    loaded.print();
    bulk_phase.print();
    let interference = Interference::new(&baseline, &loaded, (baseline_locks, loaded_locks));
    interference.print();
    Ok((vec![baseline, loaded, bulk_phase], interference))
}

/// The watch scenario: opens the streams once, then for each event rate generates offers for
/// the watched agents for `--duration` and records commit-to-delivery latency.
async fn watch(
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(line: &str) -> Result<RunArgs, String> {
        Cmd::try_parse_from(std::iter::once("run").chain(line.split_whitespace()))
            .map(|c| c.run)
            .map_err(|e| e.to_string())
    }

    fn plan_of(line: &str) -> Result<Plan, String> {
        plan(&args(line)?)
    }

    #[test]
    fn durations_parse_or_say_why_not() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        for bad in [
            "",
            "0s",
            "-1s",
            "1.5s",
            "10ms",
            "abc",
            "18446744073709551615m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn latencies_parse_with_a_unit() {
        assert_eq!(parse_latency("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_latency("2.5ms"), Ok(Duration::from_micros(2500)));
        assert_eq!(parse_latency("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_latency("1s"), Ok(Duration::from_secs(1)));
        for bad in ["10", "ms", "0ms", "-3ms", "NaNms", "infs", "2h", "7200s"] {
            assert!(parse_latency(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates_and_sweeps_refuse_zero_and_garbage() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("10_000"), Ok(10_000));
        for bad in ["0", "-5", "1.5", "", "lots", "2000000"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_sweep("2000, 500,1000,500,"),
            Ok(Rates(vec![500, 1000, 2000]))
        );
        assert!(parse_sweep("").is_err());
        assert!(parse_sweep(" , ").is_err());
        assert!(parse_sweep("500,0").is_err());
        assert!(parse_sweep("500,x").is_err());
    }

    #[test]
    fn the_flags_choose_the_loop() {
        assert_eq!(
            plan_of("client-info"),
            Ok(Plan::Closed(DEFAULT_CONCURRENCY))
        );
        assert_eq!(
            plan_of("offer --concurrency 8 --pgbench"),
            Ok(Plan::Closed(8))
        );
        assert_eq!(plan_of("client-info --rate 500"), Ok(Plan::Open(vec![500])));
        assert_eq!(
            plan_of("client-info --pgbench --rounds 3"),
            Ok(Plan::Closed(DEFAULT_CONCURRENCY))
        );
        assert_eq!(
            plan_of("search-destination --rate 500 --pgbench --connections 4"),
            Ok(Plan::Open(vec![500]))
        );
        assert_eq!(
            plan_of("client-info --sweep 2000,500 --p99-limit 3ms --chart c.svg --json r.json"),
            Ok(Plan::Open(vec![500, 2000]))
        );
        assert_eq!(
            plan_of("client-info --sweep 500,1000 --warmup 5s"),
            Ok(Plan::Open(vec![500, 1000]))
        );
        assert_eq!(
            plan_of("offer --rate 300 --bulk-domain bulk --bulk-clients 2"),
            Ok(Plan::Open(vec![300]))
        );
        assert_eq!(
            plan_of("offer --concurrency 4 --bulk-domain bulk --bulk-rate 200"),
            Ok(Plan::Closed(4))
        );
    }

    /// The existing watch command lines keep their meaning: --rate is events per second,
    /// --concurrency the offer generators.
    #[test]
    fn watch_keeps_its_rate_and_generators() {
        assert_eq!(
            plan_of("watch --streams 1000 --rate 1000 --concurrency 4 --duration 20s"),
            Ok(Plan::Open(vec![1000]))
        );
        assert_eq!(
            plan_of("watch --streams 10000 --rate 2 --concurrency 1 --duration 30s"),
            Ok(Plan::Open(vec![2]))
        );
        assert_eq!(plan_of("watch"), Ok(Plan::Open(vec![DEFAULT_WATCH_RATE])));
        assert_eq!(
            plan_of("watch --sweep 500,1000"),
            Ok(Plan::Open(vec![500, 1000]))
        );
    }

    #[test]
    fn contradictory_or_bad_flags_are_refused_by_name() {
        for (line, flag) in [
            ("client-info --rate 0", "--rate"),
            ("client-info --sweep ''", "--sweep"),
            ("client-info --rate 5 --sweep 5,6", "--sweep"),
            ("client-info --duration 10x", "--duration"),
            ("client-info --duration 0", "--duration"),
            ("client-info --concurrency 0", "--concurrency"),
            ("client-info --rate 10 --max-in-flight 0", "--max-in-flight"),
            ("client-info --rate 10 --p99-limit 3", "--p99-limit"),
            ("offer --rate 10 --pgbench", "--pgbench"),
            ("create-relink --sweep 10,20 --pgbench", "--pgbench"),
            ("client-info --connections 0", "--connections"),
            ("client-info --rounds 3", "--rounds"),
            ("client-info --rate 10 --pgbench --rounds 3", "--rounds"),
            ("client-info --rate 10 --concurrency 8", "--concurrency"),
            ("client-info --max-in-flight 8", "--max-in-flight"),
            ("client-info --p99-limit 3ms", "--p99-limit"),
            ("client-info --rate 100 --chart c.svg", "--chart"),
            ("offer --bulk-clients 3", "--bulk-clients"),
            ("offer --sweep 1,2 --bulk-domain b", "--bulk-domain"),
            ("watch --bulk-domain b", "--bulk-domain"),
            ("watch --warmup 5s", "--warmup"),
            ("client-info --rate 10 --warmup 0s", "--warmup"),
            ("offer --bulk-domain b --pgbench", "--pgbench"),
            (
                "offer --rate 10 --bulk-domain b --bulk-rate 0",
                "--bulk-rate",
            ),
        ] {
            let err = plan_of(line).expect_err(line);
            assert!(err.contains(flag), "{line}: {err}");
        }
    }
}
