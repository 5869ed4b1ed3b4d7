//! The command line of `run` ([`RunArgs`]): its flags, the parsers of their values
//! (durations, latencies, rates, sweeps, counts), the defaults of the flags, and the plan the
//! flags make once checked against each other (`Plan`, `plan`).
//!
//! Imports only the shared [`Scenario`] (`crate::scenario`). Every other part of the run
//! imports this module; it imports none of them.

use std::path::PathBuf;
use std::time::Duration;

use crate::scenario::Scenario;

/// Closed-loop clients when `--concurrency` is not given (watch: offer generators).
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Open loop: requests in flight at most when `--max-in-flight` is not given. Far above what
/// the server answers at once on this machine, so that it only bounds the harness's memory
/// when the server stalls.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// Watch: events per second when `--rate` is not given.
pub const DEFAULT_WATCH_RATE: u64 = 1000;
/// Two-domain run: bulk clients when `--bulk-clients` is not given.
pub const DEFAULT_BULK_CLIENTS: usize = 4;
/// Changes: import streams when `--concurrency` is not given.
pub const DEFAULT_IMPORTERS: usize = 2;
/// Changes: what each slow consumer reads per second when `--slow-rate` is not given.
pub const DEFAULT_SLOW_RATE: u64 = 100;

/// The rates of `--sweep`, in increasing order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rates(pub Vec<u64>);

/// Options of `run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The scenario.
    #[arg(value_enum)]
    pub(super) scenario: Scenario,
    /// Closed loop: concurrent clients, each sending its next request when the previous one
    /// answers [default: 16]. Watch: offer generators. Changes: import streams [default: 2].
    #[arg(long, value_parser = parse_count)]
    pub(super) concurrency: Option<usize>,
    /// How long (seconds, or with an s/m suffix: 30, 30s, 2m); with --sweep, each rate; with
    /// --bulk-domain, each phase.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(super) duration: Duration,
    /// Closed loop: also replay the scenario's SQL with pgbench at the same concurrency and
    /// print the ratio. Open loop (reads): also replay it at each rate on the same fixed
    /// schedule, straight to PostgreSQL over 16 connections, and print its latency (pgbench's
    /// own `-R` draws Poisson arrivals, which would not compare).
    #[arg(long)]
    pub(super) pgbench: bool,
    /// Watch: streams to hold.
    #[arg(long, default_value_t = 1000, value_parser = parse_count)]
    pub(super) streams: usize,
    /// Open loop: requests per second, sent on a fixed schedule whatever the answers, latency
    /// measured from each request's intended start. Watch: events per second [default: 1000]
    /// (each offer makes two).
    #[arg(long, value_parser = parse_rate, conflicts_with = "sweep")]
    pub(super) rate: Option<u64>,
    /// Open loop at each of these rates in turn (comma-separated requests per second, for
    /// example 500,1000,2000), --duration each.
    #[arg(long, value_parser = parse_sweep)]
    pub(super) sweep: Option<Rates>,
    /// With --rate or --sweep: the p99 to compare with (for example 3ms, 2.5ms, 500us, 1s);
    /// a sweep reports the rate where p99 first exceeds it.
    #[arg(long, value_parser = parse_latency)]
    pub(super) p99_limit: Option<Duration>,
    /// Open loop: requests in flight at most [default: 1000]. A request due while the cap is
    /// full waits for a slot, is still timed from its intended start, and is counted.
    #[arg(long, value_parser = parse_count)]
    pub(super) max_in_flight: Option<usize>,
    /// Write everything measured (settings, each phase's throughput, errors and percentiles)
    /// to this JSON file.
    #[arg(long)]
    pub(super) json: Option<PathBuf>,
    /// With --sweep: draw latency against rate into this SVG file.
    #[arg(long)]
    pub(super) chart: Option<PathBuf>,
    /// The state file's domain to run in: a name given to `seed --domain` [default: the one
    /// `seed` made without --domain].
    #[arg(long)]
    pub(super) domain: Option<String>,
    /// Two-domain run: measure the scenario alone, then while a bulk update (a CRM sync:
    /// SearchContacts by crm_id then UpdateContact, contact after contact) runs in this
    /// domain of the state file.
    #[arg(long)]
    pub(super) bulk_domain: Option<String>,
    /// Two-domain run: bulk clients, each editing flat out [default: 4]; with --bulk-rate, the
    /// bulk's requests in flight at most.
    #[arg(long, value_parser = parse_count)]
    pub(super) bulk_clients: Option<usize>,
    /// Two-domain run: pace the bulk at this many edits per second instead of flat out.
    #[arg(long, value_parser = parse_rate)]
    pub(super) bulk_rate: Option<u64>,
    /// Before measuring, load the server for this long (the first rate of a sweep, or the
    /// concurrency) without recording: connections opened, statements prepared, caches warm,
    /// so that the first phase does not pay for them.
    #[arg(long, value_parser = parse_duration)]
    pub(super) warmup: Option<Duration>,
    /// Skip the VACUUM ANALYZE run before measuring when the database has autovacuum off.
    #[arg(long)]
    pub(super) no_vacuum: bool,
    /// Closed loop with --pgbench: alternate the RPC run and the pgbench run this many times
    /// and give the median of the rounds' ratios [default: 1]. A shared machine's speed can
    /// drift by half within minutes, and then one RPC run against one pgbench run a minute
    /// later says more about the drift than about the server.
    #[arg(long, value_parser = parse_count)]
    pub(super) rounds: Option<usize>,
    /// HTTP/2 connections the requests are spread over, worker `w` (open loop: request `k`)
    /// on connection `w % N` [default: 1, a back-end service's one channel]. One per client
    /// (`--connections 16` at `--concurrency 16`) is what 16 agent desktops would open; on two
    /// shared cores it costs more CPU per request (less batching of frames and wake-ups).
    #[arg(long, value_parser = parse_count)]
    pub(super) connections: Option<usize>,
    /// Changes: consumers following the feed as fast as they can, each on its own connection.
    #[arg(long, default_value_t = 1, value_parser = parse_count)]
    pub(super) consumers: usize,
    /// Changes: consumers that read only `--slow-rate` changes per second while the import
    /// runs (each on its own connection), then the rest as fast as they can.
    #[arg(long, default_value_t = 1)]
    pub(super) slow_consumers: usize,
    /// Changes: what each slow consumer reads per second [default: 100].
    #[arg(long, value_parser = parse_rate)]
    pub(super) slow_rate: Option<u64>,
    /// Changes: the server's process id, to sample its resident memory (/proc/PID/status)
    /// every second; without it the memory is not reported.
    #[arg(long)]
    pub(super) server_pid: Option<u32>,
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
pub(super) enum Plan {
    /// One closed-loop run.
    Closed(usize),
    /// Open loop at each rate (one for `--rate`).
    Open(Vec<u64>),
}

/// Checks the flags against each other (the combinations clap cannot express), so that a
/// contradiction is refused before anything runs.
pub(super) fn plan(args: &RunArgs) -> Result<Plan, String> {
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
    if args.scenario == Scenario::Changes {
        for (given, flag) in [
            (open, "--rate and --sweep"),
            (args.pgbench, "--pgbench"),
            (args.bulk_domain.is_some(), "--bulk-domain"),
            (args.warmup.is_some(), "--warmup"),
            (args.max_in_flight.is_some(), "--max-in-flight"),
            (args.p99_limit.is_some(), "--p99-limit"),
            (args.rounds.is_some(), "--rounds"),
            (args.connections.is_some(), "--connections"),
        ] {
            if given {
                return Err(format!(
                    "{flag}: changes imports flat out with --concurrency streams and measures the feed; it takes none"
                ));
            }
        }
        return Ok(Plan::Closed(args.concurrency.unwrap_or(DEFAULT_IMPORTERS)));
    }
    if args.scenario != Scenario::Changes && (args.slow_rate.is_some() || args.server_pid.is_some())
    {
        return Err("--slow-rate and --server-pid apply to the changes scenario".to_owned());
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

#[cfg(test)]
mod tests {
    // By path: `super::*` would read, to `circles` (which does not see inline modules), as an
    // import of the run's entry.
    use crate::run::args::*;
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

    #[test]
    fn changes_imports_with_its_streams() {
        assert_eq!(plan_of("changes"), Ok(Plan::Closed(DEFAULT_IMPORTERS)));
        assert_eq!(
            plan_of("changes --concurrency 4 --consumers 2 --slow-consumers 0 --server-pid 7"),
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
            ("changes --rate 10", "--rate"),
            ("changes --pgbench", "--pgbench"),
            ("changes --bulk-domain b", "--bulk-domain"),
            ("changes --consumers 0", "--consumers"),
            ("changes --slow-rate 0", "--slow-rate"),
            ("offer --server-pid 1", "--server-pid"),
        ] {
            let err = plan_of(line).expect_err(line);
            assert!(err.contains(flag), "{line}: {err}");
        }
    }
}
