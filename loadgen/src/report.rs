//! What a run reports: one [`Phase`] per measured stretch of load (a closed-loop run, one rate
//! of an open-loop sweep, the baseline and the loaded phase of a two-domain run, the bulk load
//! itself), the printed rows, where p99 crosses a limit in a sweep ([`Crossing`]), and the
//! whole [`Report`] as JSON for plotting (`run --json FILE`, read back by `chart`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::engine::Recorder;

/// The version of the JSON layout, raised when a field changes meaning or goes away.
pub const FORMAT: u32 = 1;

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest value.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of microseconds (all 0 when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// How the load of a phase was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A fixed number of clients, each waiting for its answer.
    Closed,
    /// A fixed arrival rate, latency from each request's intended start.
    Open,
}

/// One measured stretch of load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// What it was: `rpc`, `rate 1000/s`, `baseline`, `loaded`, `bulk`, `commit-to-delivery`,
    /// `write-to-delivery`.
    pub label: String,
    /// The state file's domain it ran in (`default` for the one `seed` made without
    /// `--domain`).
    pub domain: String,
    /// Closed or open loop.
    pub mode: Mode,
    /// Open loop: the requests per second scheduled.
    pub target_rate: Option<u64>,
    /// Closed loop: the clients.
    pub concurrency: Option<usize>,
    /// Seconds from the start to the last answer.
    pub seconds: f64,
    /// Requests scheduled (open loop) or sent (closed loop).
    pub scheduled: u64,
    /// Successful requests.
    pub ok: u64,
    /// Successful requests per second over `seconds`.
    pub throughput: f64,
    /// Failed requests by status code.
    pub errors: BTreeMap<String, u64>,
    /// Open loop: requests sent late because `--max-in-flight` requests were in flight
    /// (still timed from their intended start).
    pub cap_delayed: u64,
    /// Open loop: requests due that could not be sent before the end (the cap stayed full).
    pub unsent: u64,
    /// Latency of the successful requests: from the intended start in open loop.
    pub latency_ms: Percentiles,
    /// Open loop: from the actual send to the answer.
    pub service_ms: Option<Percentiles>,
    /// Open loop: how late requests were sent (harness delay and waits for the cap).
    pub schedule_lag_ms: Option<Percentiles>,
    /// Watch with commit timestamps tracked: latency from each event's write (inside its
    /// statement, before the commit), while `latency_ms` is from its commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_write_ms: Option<Percentiles>,
}

impl Phase {
    /// The phase `recorder` measured between `started` and `ended`.
    pub fn new(
        label: impl Into<String>,
        domain: &str,
        load: Load,
        recorder: &Recorder,
        started: Instant,
        ended: Instant,
    ) -> Phase {
        let seconds = ended.saturating_duration_since(started).as_secs_f64();
        let (mode, target_rate, concurrency) = match load {
            Load::Closed(c) => (Mode::Closed, None, Some(c)),
            Load::Open(r) => (Mode::Open, Some(r), None),
        };
        let open = mode == Mode::Open;
        Phase {
            label: label.into(),
            domain: domain.to_owned(),
            mode,
            target_rate,
            concurrency,
            seconds,
            scheduled: recorder.scheduled,
            ok: recorder.ok,
            throughput: if seconds > 0.0 {
                recorder.ok as f64 / seconds
            } else {
                0.0
            },
            errors: recorder.errors.clone(),
            cap_delayed: recorder.cap_delayed,
            unsent: recorder.unsent,
            latency_ms: Percentiles::of(&recorder.latency),
            service_ms: open.then(|| Percentiles::of(&recorder.service)),
            schedule_lag_ms: open.then(|| Percentiles::of(&recorder.lag)),
            from_write_ms: None,
        }
    }

    /// Failed requests, all codes together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Prints the phase as one row (closed loop: the row the harness always printed), then its
    /// errors and, in open loop, what the cap delayed and the harness's own lag.
    pub fn print(&self) {
        let l = &self.latency_ms;
        match self.target_rate {
            None => println!(
                "{:<20} {:>9} ops {:>10.1} ops/s   p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms",
                self.label, self.ok, self.throughput, l.p50, l.p90, l.p99, l.max
            ),
            Some(_) => println!(
                "{:<20} {:>8} ok {:>9.1}/s   p50 {:>7.2}   p99 {:>7.2}   p99.9 {:>8.2}   max {:>8.2} ms   errors {}",
                self.label,
                self.ok,
                self.throughput,
                l.p50,
                l.p99,
                l.p999,
                l.max,
                self.error_count()
            ),
        }
        if !self.errors.is_empty() {
            println!("  errors: {:?}", self.errors);
        }
        if let (Some(s), Some(lag)) = (self.service_ms, self.schedule_lag_ms) {
            println!(
                "  service time (send to answer) p50 {:.2} p99 {:.2} ms; sent late by p99 {:.2} max {:.2} ms",
                s.p50, s.p99, lag.p99, lag.max
            );
            if self.cap_delayed > 0 || self.unsent > 0 {
                println!(
                    "  {} requests waited for a free slot under --max-in-flight (timed from their intended start); {} never sent",
                    self.cap_delayed, self.unsent
                );
            }
        }
    }
}

/// The load of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// This many closed-loop clients.
    Closed(usize),
    /// This many requests per second.
    Open(u64),
}

/// Where p99 crosses the limit in a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// The limit, in milliseconds.
    pub limit_ms: f64,
    /// The highest rate below the first crossing whose p99 was within the limit.
    pub last_within: Option<u64>,
    /// The first rate (in increasing order) whose p99 exceeded the limit, or that could not
    /// send every request it scheduled.
    pub first_over: Option<u64>,
    /// The rate where p99 reaches the limit, interpolated linearly between the two.
    pub interpolated: Option<f64>,
    /// Rates above `first_over` whose p99 was within the limit again: noise, or a warm-up
    /// the first rate paid for (see `--warmup`).
    #[serde(default)]
    pub recovered: Vec<u64>,
}

impl Crossing {
    /// Finds where p99 first exceeds `limit` among the open-loop phases of a sweep, taken in
    /// increasing order of rate. A rate that left requests unsent counts as over the limit:
    /// its percentiles miss the requests that waited longest.
    pub fn find(phases: &[Phase], limit: Duration) -> Crossing {
        let limit_ms = limit.as_secs_f64() * 1000.0;
        let mut rates: Vec<(u64, f64, bool)> = phases
            .iter()
            .filter_map(|p| {
                let over = p.latency_ms.p99 > limit_ms || p.unsent > 0;
                p.target_rate.map(|r| (r, p.latency_ms.p99, over))
            })
            .collect();
        rates.sort_by_key(|(r, _, _)| *r);
        let mut crossing = Crossing {
            limit_ms,
            last_within: None,
            first_over: None,
            interpolated: None,
            recovered: Vec::new(),
        };
        let mut below: Option<(u64, f64)> = None;
        for (k, &(rate, p99, over)) in rates.iter().enumerate() {
            if !over {
                below = Some((rate, p99));
                continue;
            }
            crossing.first_over = Some(rate);
            crossing.recovered = rates[k + 1..]
                .iter()
                .filter(|(_, _, over)| !over)
                .map(|(r, _, _)| *r)
                .collect();
            crossing.last_within = below.map(|(r, _)| r);
            crossing.interpolated = below.map(|(r0, p0)| {
                if p99 > p0 && p99 > limit_ms {
                    r0 as f64 + (limit_ms - p0) / (p99 - p0) * (rate - r0) as f64
                } else {
                    // Over because requests went unsent, not by p99: no slope to follow.
                    r0 as f64
                }
            });
            return crossing;
        }
        crossing.last_within = below.map(|(r, _)| r);
        crossing
    }

    /// Prints the crossing in a sentence or two.
    pub fn print(&self) {
        self.print_crossing();
        if !self.recovered.is_empty() {
            let rates: Vec<String> = self.recovered.iter().map(|r| format!("{r}/s")).collect();
            println!(
                "  but p99 was within the limit again at {}: noise, or a warm-up the first rate paid for (--warmup)",
                rates.join(", ")
            );
        }
    }

    fn print_crossing(&self) {
        let limit = self.limit_ms;
        match (self.last_within, self.first_over, self.interpolated) {
            (_, None, _) => println!(
                "p99 stayed within {limit} ms at every rate{}",
                self.last_within
                    .map(|r| format!(" (up to {r}/s)"))
                    .unwrap_or_default()
            ),
            (None, Some(r), _) => {
                println!("p99 exceeded {limit} ms already at the lowest rate, {r}/s")
            }
            (Some(a), Some(b), i) => println!(
                "p99 crosses {limit} ms between {a}/s and {b}/s (about {:.0}/s, interpolated)",
                i.unwrap_or(a as f64)
            ),
        }
    }
}

/// The pgbench floor of a closed-loop run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// pgbench transactions per second with the same SQL, concurrency and duration.
    pub tps: f64,
    /// RPC throughput / pgbench throughput.
    pub ratio: f64,
    /// pgbench's own transaction latency (from its per-transaction log): what the same SQL
    /// takes at the same concurrency without any server between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Percentiles>,
    /// With `--rounds`: each round's floor (RPC run then pgbench); the fields above are the
    /// round whose ratio is the median.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Floor>,
}

/// The settings a run was given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `--duration` (each rate of a sweep, each phase of a two-domain run), in seconds.
    pub duration_s: f64,
    /// `--concurrency` (closed loop; watch: offer generators).
    pub concurrency: Option<usize>,
    /// `--rate`.
    pub rate: Option<u64>,
    /// `--sweep`, in increasing order.
    pub sweep: Vec<u64>,
    /// `--max-in-flight` (open loop).
    pub max_in_flight: Option<usize>,
    /// `--p99-limit`, in milliseconds.
    pub p99_limit_ms: Option<f64>,
    /// `--bulk-domain`.
    pub bulk_domain: Option<String>,
    /// `--bulk-clients`.
    pub bulk_clients: Option<usize>,
    /// `--bulk-rate`.
    pub bulk_rate: Option<u64>,
    /// Watch: `--streams`.
    pub streams: Option<usize>,
    /// `--warmup`, in seconds.
    #[serde(default)]
    pub warmup_s: Option<f64>,
    /// HTTP/2 connections the requests were spread over (none for watch, which opens one per
    /// agent; none in reports written before `--connections`).
    #[serde(default)]
    pub connections: Option<usize>,
    /// Closed loop with `--pgbench`: `--rounds`.
    #[serde(default)]
    pub rounds: Option<usize>,
}

/// Everything a run measured, as `--json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// The scenario (`client-info`, `offer`, ...).
    pub scenario: String,
    /// The server's URL.
    pub server: String,
    /// The domain measured (`default` or a name given to `seed --domain`).
    pub domain: String,
    /// Contacts in that domain.
    pub contacts: u64,
    /// When the run started (Unix seconds).
    pub started_at: u64,
    /// The settings.
    pub settings: Settings,
    /// The phases, in the order they ran.
    pub results: Vec<Phase>,
    /// Sweep with `--p99-limit`: where p99 crosses it.
    pub crossing: Option<Crossing>,
    /// Closed loop with `--pgbench`: the floor.
    pub pgbench: Option<Floor>,
    /// Open loop with `--pgbench`: the scenario's SQL alone at each rate, on the same
    /// schedule (labels `sql <rate>/s`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floor: Vec<Phase>,
    /// Two-domain run: how the scenario's phases compare (loaded / baseline).
    pub interference: Option<Interference>,
    /// Changes: what the feed's consumers saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<Feed>,
}

impl Report {
    /// Writes the report as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("--json: cannot write {}: {e}", path.display()))
    }

    /// Reads a report `write` wrote.
    pub fn read(path: &Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// A two-domain run's comparison of the measured scenario with and without the bulk load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interference {
    /// Loaded throughput / baseline throughput.
    pub throughput: f64,
    /// Loaded p50 / baseline p50.
    pub p50: f64,
    /// Loaded p99 / baseline p99.
    pub p99: f64,
    /// Lock waits sampled (one sample every half second) during the baseline phase.
    pub baseline_lock_waits: LockWaits,
    /// The same during the loaded phase.
    pub loaded_lock_waits: LockWaits,
}

/// Backends of the measured database waiting for a heavyweight lock, sampled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockWaits {
    /// Samples taken.
    pub samples: u64,
    /// Backends waiting on a lock, summed over the samples.
    pub waiting: u64,
    /// The most backends waiting in one sample.
    pub max: u64,
    /// `waiting` by kind of lock: `notify` (the cluster-wide lock a transaction that sent
    /// NOTIFY takes at commit), `transactionid` and `tuple` (row locks), `extend`,
    /// `relation`, `advisory`, ...
    #[serde(default)]
    pub by_kind: BTreeMap<String, u64>,
}

impl Interference {
    /// Compares `loaded` with `baseline`.
    pub fn new(baseline: &Phase, loaded: &Phase, locks: (LockWaits, LockWaits)) -> Interference {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Interference {
            throughput: ratio(loaded.throughput, baseline.throughput),
            p50: ratio(loaded.latency_ms.p50, baseline.latency_ms.p50),
            p99: ratio(loaded.latency_ms.p99, baseline.latency_ms.p99),
            baseline_lock_waits: locks.0,
            loaded_lock_waits: locks.1,
        }
    }

    /// Prints the comparison.
    pub fn print(&self) {
        println!(
            "loaded / baseline: throughput x{:.2}, p50 x{:.2}, p99 x{:.2}",
            self.throughput, self.p50, self.p99
        );
        for (name, w) in [
            ("baseline", &self.baseline_lock_waits),
            ("loaded", &self.loaded_lock_waits),
        ] {
            if w.samples > 0 {
                let per = |n: u64| n as f64 / w.samples as f64;
                let kinds: Vec<String> = w
                    .by_kind
                    .iter()
                    .map(|(k, n)| format!("{k} {:.2}", per(*n)))
                    .collect();
                println!(
                    "backends waiting on a lock ({name}): {:.2} per sample on average{}, at most {} ({} samples)",
                    per(w.waiting),
                    if kinds.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", kinds.join(", "))
                    },
                    w.max,
                    w.samples
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(rate: u64, p99: f64, unsent: u64) -> Phase {
        Phase {
            label: format!("rate {rate}/s"),
            domain: "default".into(),
            mode: Mode::Open,
            target_rate: Some(rate),
            concurrency: None,
            seconds: 10.0,
            scheduled: rate * 10,
            ok: rate * 10 - unsent,
            throughput: rate as f64,
            errors: BTreeMap::new(),
            cap_delayed: 0,
            unsent,
            latency_ms: Percentiles {
                count: rate * 10,
                p50: p99 / 3.0,
                p90: p99 / 2.0,
                p99,
                p999: p99 * 2.0,
                max: p99 * 4.0,
                mean: p99 / 3.0,
            },
            service_ms: Some(Percentiles::default()),
            schedule_lag_ms: Some(Percentiles::default()),
            from_write_ms: None,
        }
    }

    #[test]
    fn the_crossing_is_the_first_rate_over_the_limit_in_increasing_order() {
        // Given out of order: sorted before the search.
        let phases = [
            phase(2000, 14.0, 0),
            phase(500, 2.0, 0),
            phase(4000, 9.0, 0),
            phase(1000, 6.0, 0),
        ];
        let c = Crossing::find(&phases, Duration::from_millis(10));
        assert_eq!(c.limit_ms, 10.0);
        assert_eq!(c.last_within, Some(1000));
        // 4000/s came back under the limit (noise): the first crossing still counts, and
        // the recovery is reported.
        assert_eq!(c.first_over, Some(2000));
        assert_eq!(c.recovered, [4000]);
        // 6 ms at 1000/s, 14 ms at 2000/s: 10 ms half way.
        let i = c.interpolated.expect("interpolated");
        assert!((i - 1500.0).abs() < 1e-9, "{i}");
    }

    #[test]
    fn no_crossing_when_every_rate_is_within_the_limit() {
        let phases = [phase(500, 2.0, 0), phase(1000, 3.0, 0)];
        let c = Crossing::find(&phases, Duration::from_millis(10));
        assert_eq!(
            (c.last_within, c.first_over, c.interpolated),
            (Some(1000), None, None)
        );
    }

    #[test]
    fn the_lowest_rate_over_the_limit_has_nothing_below_it() {
        let phases = [phase(500, 20.0, 0), phase(1000, 30.0, 0)];
        let c = Crossing::find(&phases, Duration::from_micros(10_500));
        assert_eq!(c.limit_ms, 10.5);
        assert_eq!(
            (c.last_within, c.first_over, c.interpolated),
            (None, Some(500), None)
        );
        assert_eq!(
            Crossing::find(&[], Duration::from_millis(1)).first_over,
            None
        );
    }

    #[test]
    fn a_rate_that_left_requests_unsent_is_over_the_limit() {
        let phases = [phase(500, 2.0, 0), phase(1000, 4.0, 17)];
        let c = Crossing::find(&phases, Duration::from_millis(10));
        assert_eq!(c.first_over, Some(1000));
        assert_eq!(c.interpolated, Some(500.0));
    }

    #[test]
    fn percentiles_of_an_empty_histogram_are_zero() {
        let p = Percentiles::of(&crate::engine::histogram());
        assert_eq!(p, Percentiles::default());
        let mut h = crate::engine::histogram();
        for v in 1..=1000 {
            h.record(v * 10).expect("in range");
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 5.0).abs() < 0.01 && (p.p99 - 9.9).abs() < 0.01);
        assert!((p.max - 10.0).abs() < 0.01 && p.p999 <= p.max);
    }

    /// The JSON layout tools plot from: field names and nesting are part of the interface.
    #[test]
    fn the_json_has_the_documented_shape_and_reads_back() {
        let phases = vec![phase(500, 2.0, 0), phase(1000, 12.0, 0)];
        let report = Report {
            format: FORMAT,
            scenario: "client-info".into(),
            server: "http://127.0.0.1:50061".into(),
            domain: "default".into(),
            contacts: 100_000,
            started_at: 1_790_000_000,
            settings: Settings {
                duration_s: 10.0,
                sweep: vec![500, 1000],
                max_in_flight: Some(1000),
                p99_limit_ms: Some(10.0),
                ..Settings::default()
            },
            crossing: Some(Crossing::find(&phases, Duration::from_millis(10))),
            results: phases,
            pgbench: None,
            floor: Vec::new(),
            interference: None,
            feed: None,
        };
        let value = serde_json::to_value(&report).expect("serialize");
        assert_eq!(value["format"], 1);
        assert_eq!(value["scenario"], "client-info");
        assert_eq!(value["settings"]["sweep"], serde_json::json!([500, 1000]));
        assert_eq!(value["settings"]["max_in_flight"], 1000);
        let first = &value["results"][0];
        for key in [
            "label",
            "domain",
            "mode",
            "target_rate",
            "seconds",
            "scheduled",
            "ok",
            "throughput",
            "errors",
            "cap_delayed",
            "unsent",
            "latency_ms",
            "service_ms",
            "schedule_lag_ms",
        ] {
            assert!(first.get(key).is_some(), "results[0].{key} missing");
        }
        assert_eq!(first["mode"], "open");
        assert_eq!(first["target_rate"], 500);
        for key in ["count", "p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(first["latency_ms"][key].is_number(), "latency_ms.{key}");
        }
        assert_eq!(value["crossing"]["first_over"], 1000);
        assert_eq!(value["crossing"]["last_within"], 500);
        assert!(value["pgbench"].is_null());
        let dir = std::env::temp_dir().join(format!("loadgen-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("r.json");
        report.write(&path).expect("write");
        assert_eq!(Report::read(&path).expect("read"), report);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The changes scenario: what the feed's consumers saw while a bulk import ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feed {
    /// Contacts imported: the changes each consumer should receive.
    pub imported: u64,
    /// Consumers reading as fast as they can.
    pub consumers: usize,
    /// Consumers reading `slow_rate` changes per second while the import ran.
    pub slow_consumers: usize,
    /// What each slow consumer read per second while the import ran.
    pub slow_rate: u64,
    /// From the end of the import to the last change a fast consumer received.
    pub catch_up_s: f64,
    /// The most changes a slow consumer had not read when the import ended.
    pub slow_behind_max: u64,
    /// From the end of the import to the last change a slow consumer received.
    pub slow_drain_s: Option<f64>,
    /// Every consumer received every change once, in order of position.
    pub in_order: bool,
    /// With `--server-pid`: the server's resident memory.
    pub memory_mib: Option<Memory>,
}

/// A process's resident memory over a run, in MiB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Before the load.
    pub before: f64,
    /// When the load stopped (the slow consumers' backlog at its largest).
    pub at_stop: f64,
    /// After everyone caught up.
    pub after: f64,
    /// The largest sample.
    pub max: f64,
    /// One sample a second.
    pub samples: Vec<f64>,
}

impl Feed {
    /// Prints what the consumers saw.
    pub fn print(&self) {
        println!(
            "feed: {} changes to each of {} consumer{} and {} slow one{} ({}/s while the import ran); caught up {:.2} s after the import; {}",
            self.imported,
            self.consumers,
            if self.consumers == 1 { "" } else { "s" },
            self.slow_consumers,
            if self.slow_consumers == 1 { "" } else { "s" },
            self.slow_rate,
            self.catch_up_s,
            if self.in_order {
                "every change once, in order"
            } else {
                "CHANGES MISSING, REPEATED OR OUT OF ORDER"
            }
        );
        if self.slow_consumers > 0 {
            println!(
                "slow consumers: up to {} changes behind when the import ended, all read {:.2} s after it",
                self.slow_behind_max,
                self.slow_drain_s.unwrap_or(f64::NAN)
            );
        }
        if let Some(m) = &self.memory_mib {
            println!(
                "server memory (RSS): {:.1} MiB before, {:.1} MiB at the import's end, {:.1} MiB at most, {:.1} MiB after",
                m.before, m.at_stop, m.max, m.after
            );
        }
    }
}
