//! What a soak reports (`soak`, driven by `run/soak.rs`): one [`Minute`] per reporting interval
//! (throughput, latency, errors, the server's resident memory and open descriptors, the
//! database's connections, event delivery), the least-squares slope per hour of each series
//! after the warm-up interval ([`Slopes`]), the pass criteria ([`Limits`], [`verdict`]), the
//! printed table, the chart and the JSON summary ([`SoakReport`]).
//!
//! Plain data and arithmetic: imports only the report's percentiles; the driver imports it.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::report::Percentiles;

/// The version of the soak's JSON layout.
pub const SOAK_FORMAT: u32 = 1;

/// One reporting interval of the soak (a minute unless `--interval` says otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// 1 for the first interval.
    pub index: usize,
    /// Seconds from the soak's start to the end of the interval (the samples' time).
    pub end_s: f64,
    /// Requests the schedule held in the interval.
    pub scheduled: u64,
    /// Successful requests.
    pub ok: u64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Failed requests by status code, and session streams that ended (`stream ended`).
    pub errors: BTreeMap<String, u64>,
    /// Requests due but never sent (the in-flight cap was full to the interval's end).
    pub unsent: u64,
    /// Latency of the mix's requests from their intended start (milliseconds).
    pub latency_ms: Percentiles,
    /// Events delivered on the session streams in the interval, and their latency from the
    /// write that produced each (`occurred_at`) to its arrival.
    pub delivery_ms: Percentiles,
    /// The server's VmRSS at the end of the interval (MiB).
    pub rss_mib: Option<f64>,
    /// The server's open file descriptors at the end of the interval.
    pub fds: Option<u64>,
    /// Connections to the server's database at the end of the interval (pg_stat_activity,
    /// the harness's own sampling connection not counted).
    pub db_connections: Option<u64>,
}

impl Minute {
    /// Failed requests and ended streams, all kinds together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.unsent
    }
}

/// Slopes per hour, by least squares over the intervals after the warm-up (none with fewer
/// than two such intervals, or when a series was not sampled).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slopes {
    /// Requests per second, per hour.
    pub throughput_per_hour: Option<f64>,
    /// p99 of the mix, ms per hour.
    pub p99_ms_per_hour: Option<f64>,
    /// p50 of the mix, ms per hour.
    pub p50_ms_per_hour: Option<f64>,
    /// Event delivery p99, ms per hour.
    pub delivery_p99_ms_per_hour: Option<f64>,
    /// Server RSS, MiB per hour.
    pub rss_mib_per_hour: Option<f64>,
    /// Server descriptors, per hour.
    pub fds_per_hour: Option<f64>,
    /// Database connections, per hour.
    pub db_connections_per_hour: Option<f64>,
}

/// The pass criteria besides "no errors".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// RSS slope at most this many MiB per hour.
    pub rss_mib_per_hour: f64,
    /// Descriptor slope at most this many per hour.
    pub fds_per_hour: f64,
    /// p99 slope at most this fraction of the median interval's p99 per hour (0.5: p99 may
    /// not rise by half its level in an hour).
    pub p99_growth_per_hour: f64,
}

/// The slope of `points` (x, y) by least squares, None for fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// The intervals the slopes are taken over: those after the first `warmup` ones.
fn measured(minutes: &[Minute], warmup: usize) -> &[Minute] {
    minutes.get(warmup..).unwrap_or_default()
}

impl Slopes {
    /// The slopes of `minutes` after the first `warmup` intervals.
    pub fn of(minutes: &[Minute], warmup: usize) -> Slopes {
        let ms = measured(minutes, warmup);
        let per_hour = |pick: &dyn Fn(&Minute) -> Option<f64>| {
            let points: Vec<(f64, f64)> = ms
                .iter()
                .map(|m| pick(m).map(|y| (m.end_s / 3600.0, y)))
                .collect::<Option<_>>()?;
            slope(&points)
        };
        Slopes {
            throughput_per_hour: per_hour(&|m| Some(m.throughput)),
            p99_ms_per_hour: per_hour(&|m| Some(m.latency_ms.p99)),
            p50_ms_per_hour: per_hour(&|m| Some(m.latency_ms.p50)),
            delivery_p99_ms_per_hour: per_hour(&|m| {
                (m.delivery_ms.count > 0).then_some(m.delivery_ms.p99)
            }),
            rss_mib_per_hour: per_hour(&|m| m.rss_mib),
            fds_per_hour: per_hour(&|m| m.fds.map(|f| f as f64)),
            db_connections_per_hour: per_hour(&|m| m.db_connections.map(|c| c as f64)),
        }
    }
}

/// The median of the p99s of `minutes` after the warm-up (0 when there are none).
pub fn median_p99(minutes: &[Minute], warmup: usize) -> f64 {
    let mut v: Vec<f64> = measured(minutes, warmup)
        .iter()
        .map(|m| m.latency_ms.p99)
        .collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Why the soak failed, one reason a line; empty when it passed. Errors count in every
/// interval, the warm-up included; a series that was not sampled, or too short to have a
/// slope, fails its criterion (a soak that cannot tell is not a pass).
pub fn verdict(minutes: &[Minute], warmup: usize, slopes: &Slopes, limits: &Limits) -> Vec<String> {
    let mut failures = Vec::new();
    let errors: u64 = minutes.iter().map(Minute::error_count).sum();
    if errors > 0 {
        failures.push(format!("{errors} errors"));
    }
    let mut check = |what: &str, value: Option<f64>, limit: f64, unit: &str| match value {
        None => failures.push(format!(
            "{what}: no slope (not sampled, or too few intervals)"
        )),
        Some(v) if v > limit => {
            failures.push(format!("{what} grew {v:.2} {unit}/h, limit {limit:.2}"))
        }
        Some(_) => {}
    };
    check(
        "server RSS",
        slopes.rss_mib_per_hour,
        limits.rss_mib_per_hour,
        "MiB",
    );
    check(
        "server descriptors",
        slopes.fds_per_hour,
        limits.fds_per_hour,
        "",
    );
    let level = median_p99(minutes, warmup);
    check(
        "p99",
        slopes.p99_ms_per_hour,
        limits.p99_growth_per_hour * level,
        "ms",
    );
    failures
}

/// How the soak's rate was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateSource {
    /// `given` (`--rate`) or `half the closed-loop maximum`.
    pub how: String,
    /// The closed-loop run of the same mix before the soak: clients, seconds, throughput.
    pub closed_concurrency: Option<usize>,
    /// Its duration in seconds.
    pub closed_seconds: Option<f64>,
    /// Its throughput (requests/s).
    pub closed_throughput: Option<f64>,
    /// Its errors.
    pub closed_errors: Option<u64>,
}

/// Everything a soak measured, as `soak --json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    /// [`SOAK_FORMAT`].
    pub format: u32,
    /// The server's URL.
    pub server: String,
    /// The server's process id (given or found from its port).
    pub server_pid: Option<u32>,
    /// The domain measured.
    pub domain: String,
    /// Contacts in that domain.
    pub contacts: u64,
    /// When the soak started (Unix seconds).
    pub started_at: u64,
    /// The mix: each kind of request and its share of every 20.
    pub mix: Vec<(String, u32)>,
    /// Session streams held open.
    pub streams: usize,
    /// Streams that opened.
    pub streams_open: u64,
    /// The open-loop rate of the mix (requests/s).
    pub rate: u64,
    /// How it was set.
    pub rate_source: RateSource,
    /// Seconds per reporting interval.
    pub interval_s: f64,
    /// Intervals left out of the slopes at the start.
    pub warmup_intervals: usize,
    /// Each interval.
    pub minutes: Vec<Minute>,
    /// The slopes after the warm-up.
    pub slopes: Slopes,
    /// The median p99 after the warm-up (ms), the level the p99 slope is compared with.
    pub median_p99_ms: f64,
    /// The pass criteria.
    pub limits: Limits,
    /// Whether every criterion held.
    pub passed: bool,
    /// Why not.
    pub failures: Vec<String>,
}

impl SoakReport {
    /// Writes the report as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("--json: cannot write {}: {e}", path.display()))
    }

    /// Reads a report `write` wrote.
    pub fn read(path: &Path) -> Result<SoakReport, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Prints the slopes and the verdict.
    pub fn print_summary(&self) {
        let s = &self.slopes;
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:+.2}"));
        println!(
            "slopes per hour after {} warm-up interval(s): throughput {} /s, p50 {} ms, p99 {} ms \
             (median p99 {:.2} ms), delivery p99 {} ms, RSS {} MiB, descriptors {}, db connections {}",
            self.warmup_intervals,
            f(s.throughput_per_hour),
            f(s.p50_ms_per_hour),
            f(s.p99_ms_per_hour),
            self.median_p99_ms,
            f(s.delivery_p99_ms_per_hour),
            f(s.rss_mib_per_hour),
            f(s.fds_per_hour),
            f(s.db_connections_per_hour),
        );
        if self.passed {
            println!("soak passed");
        } else {
            println!("soak FAILED: {}", self.failures.join("; "));
        }
    }
}

/// The header of the per-interval table.
pub const HEADER: &str =
    "  min    ops/s    p50 ms    p99 ms  errors  events  deliv p99 ms   RSS MiB    fds  db conns";

/// One interval's row of the table.
pub fn row(m: &Minute) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    format!(
        "{:>5} {:>8.1} {:>9.2} {:>9.2} {:>7} {:>7} {:>13.2} {:>9} {:>6} {:>9}",
        m.index,
        m.throughput,
        m.latency_ms.p50,
        m.latency_ms.p99,
        m.error_count(),
        m.delivery_ms.count,
        m.delivery_ms.p99,
        opt(m.rss_mib.map(|r| format!("{r:.1}"))),
        opt(m.fds.map(|f| f.to_string())),
        opt(m.db_connections.map(|c| c.to_string())),
    )
}

const SIZE: (u32, u32) = (1100, 760);

/// The soak's chart: four panels against the minute, latency (p50, p99, delivery p99),
/// throughput, server RSS, descriptors and database connections.
pub fn svg(report: &SoakReport) -> Result<String, String> {
    let ms = &report.minutes;
    if ms.is_empty() {
        return Err("no intervals to chart".to_owned());
    }
    let draw_err = |e: plotters::drawing::DrawingAreaErrorKind<_>| format!("chart: {e}");
    let minutes = ms.len() as f64 + 0.5;
    let title = format!(
        "soak: {} requests/s of the mix, {} streams, {} contacts, {} x {} s ({})",
        report.rate,
        report.streams,
        report.contacts,
        ms.len(),
        report.interval_s,
        if report.passed { "passed" } else { "FAILED" }
    );
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = root.titled(&title, ("sans-serif", 18)).map_err(draw_err)?;
        let panels = root.split_evenly((2, 2));
        type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);
        let draw = |area: &DrawingArea<SVGBackend, _>,
                    y_desc: &str,
                    series: Vec<Series>|
         -> Result<(), String> {
            let hi = series
                .iter()
                .flat_map(|s| s.2.iter().map(|p| p.1))
                .fold(0.0f64, f64::max)
                * 1.2;
            let hi = if hi > 0.0 { hi } else { 1.0 };
            let mut chart = ChartBuilder::on(area)
                .margin(14)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(0.5..minutes, 0.0..hi)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc(format!("interval ({} s each)", report.interval_s))
                .y_desc(y_desc)
                .max_light_lines(1)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()
                .map_err(draw_err)?;
            for (label, colour, points) in series {
                let style = ShapeStyle::from(&colour).stroke_width(2);
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(draw_err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(draw_err)?;
            Ok(())
        };
        let at = |pick: &dyn Fn(&Minute) -> Option<f64>| -> Vec<(f64, f64)> {
            ms.iter()
                .filter_map(|m| pick(m).map(|y| (m.index as f64, y)))
                .collect()
        };
        let blue = RGBColor(31, 119, 180);
        let red = RGBColor(214, 39, 40);
        let green = RGBColor(44, 160, 44);
        draw(
            &panels[0],
            "latency (ms)",
            vec![
                ("p99", red, at(&|m| Some(m.latency_ms.p99))),
                ("p50", green, at(&|m| Some(m.latency_ms.p50))),
                (
                    "event delivery p99",
                    blue,
                    at(&|m| (m.delivery_ms.count > 0).then_some(m.delivery_ms.p99)),
                ),
            ],
        )?;
        draw(
            &panels[1],
            "requests/s",
            vec![
                ("throughput", blue, at(&|m| Some(m.throughput))),
                ("errors", red, at(&|m| Some(m.error_count() as f64))),
            ],
        )?;
        draw(
            &panels[2],
            "MiB",
            vec![("server RSS", blue, at(&|m| m.rss_mib))],
        )?;
        draw(
            &panels[3],
            "count",
            vec![
                ("server descriptors", blue, at(&|m| m.fds.map(|f| f as f64))),
                (
                    "database connections",
                    green,
                    at(&|m| m.db_connections.map(|c| c as f64)),
                ),
            ],
        )?;
        root.present().map_err(draw_err)?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(index: usize, p99: f64, rss: f64, fds: u64) -> Minute {
        Minute {
            index,
            end_s: index as f64 * 60.0,
            throughput: 500.0,
            latency_ms: Percentiles {
                count: 1000,
                p50: 1.0,
                p99,
                ..Percentiles::default()
            },
            rss_mib: Some(rss),
            fds: Some(fds),
            db_connections: Some(33),
            ..Minute::default()
        }
    }

    const LIMITS: Limits = Limits {
        rss_mib_per_hour: 10.0,
        fds_per_hour: 10.0,
        p99_growth_per_hour: 0.5,
    };

    #[test]
    fn least_squares_slope() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        let noisy = slope(&[(0.0, 1.0), (1.0, 2.0), (2.0, 1.0), (3.0, 2.0)]).expect("a slope");
        assert!((noisy - 0.2).abs() < 1e-9, "{noisy}");
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn flat_series_pass_and_the_warm_up_is_left_out() {
        // The warm-up interval's RSS is far below (the server filling its caches): left out.
        let mut ms = vec![minute(1, 50.0, 40.0, 900)];
        ms.extend((2..=30).map(|i| minute(i, 10.0 + (i % 2) as f64, 100.0, 1040)));
        let slopes = Slopes::of(&ms, 1);
        let rss = slopes.rss_mib_per_hour.expect("rss slope");
        assert!(rss.abs() < 1e-9, "{rss}");
        assert_eq!(slopes.db_connections_per_hour, Some(0.0));
        assert_eq!(median_p99(&ms, 1), 10.0);
        assert!(verdict(&ms, 1, &slopes, &LIMITS).is_empty());
        // With the warm-up counted, RSS "grows".
        let with = Slopes::of(&ms, 0).rss_mib_per_hour.expect("rss slope");
        assert!(with > 10.0, "{with}");
    }

    #[test]
    fn growth_and_errors_fail_with_their_reasons() {
        // 1 MiB and 1 descriptor a minute: 60 an hour each; p99 up 1 ms a minute from 10.
        let ms: Vec<Minute> = (1..=11)
            .map(|i| minute(i, 10.0 + i as f64, 100.0 + i as f64, 1000 + i as u64))
            .collect();
        let slopes = Slopes::of(&ms, 1);
        let rss = slopes.rss_mib_per_hour.expect("rss slope");
        assert!((rss - 60.0).abs() < 1e-6, "{rss}");
        let failures = verdict(&ms, 1, &slopes, &LIMITS);
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[0].starts_with("server RSS grew 60.00"));
        assert!(failures[1].starts_with("server descriptors grew 60.00"));
        assert!(failures[2].starts_with("p99 grew 60.00"), "{failures:?}");

        let mut ms: Vec<Minute> = (1..=5).map(|i| minute(i, 10.0, 100.0, 1000)).collect();
        ms[0].errors.insert("Unavailable".to_owned(), 2);
        ms[3].unsent = 1;
        let failures = verdict(&ms, 1, &Slopes::of(&ms, 1), &LIMITS);
        assert_eq!(failures, ["3 errors"]);
        // Not sampled: no slope, no pass.
        for m in &mut ms {
            m.rss_mib = None;
            m.errors.clear();
            m.unsent = 0;
        }
        let failures = verdict(&ms, 1, &Slopes::of(&ms, 1), &LIMITS);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].starts_with("server RSS: no slope"));
    }

    #[test]
    fn the_chart_draws_every_panel() {
        let ms: Vec<Minute> = (1..=3).map(|i| minute(i, 10.0, 100.0, 1000)).collect();
        let report = SoakReport {
            format: SOAK_FORMAT,
            server: String::new(),
            server_pid: None,
            domain: "default".into(),
            contacts: 10,
            started_at: 0,
            mix: Vec::new(),
            streams: 3,
            streams_open: 3,
            rate: 10,
            rate_source: RateSource {
                how: "given".into(),
                closed_concurrency: None,
                closed_seconds: None,
                closed_throughput: None,
                closed_errors: None,
            },
            interval_s: 60.0,
            warmup_intervals: 1,
            slopes: Slopes::of(&ms, 1),
            minutes: ms,
            median_p99_ms: 10.0,
            limits: LIMITS,
            passed: true,
            failures: Vec::new(),
        };
        let svg = svg(&report).expect("svg");
        for label in ["event delivery p99", "server RSS", "database connections"] {
            assert!(svg.contains(label), "{label}");
        }
        assert!(row(&report.minutes[0]).contains("100.0"));
    }
}
