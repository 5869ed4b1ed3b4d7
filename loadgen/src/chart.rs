//! Latency-vs-rate charts (SVG, drawn with plotters) from the open-loop phases of one or more
//! reports: for one report its p50, p99 and p99.9 by rate; for several, each report's p99 (solid)
//! and p50 (dashed), one colour per report. A report's `--p99-limit` is a dotted line.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Mode, Percentiles, Report};

/// Which percentile a line draws.
type Pick = fn(&Percentiles) -> f64;

const SIZE: (u32, u32) = (960, 540);
/// The width of the legend, right of the plot.
const LEGEND_WIDTH: u32 = 260;
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// The limit line's colour on a chart of one report.
const LIMIT: RGBColor = RGBColor(90, 90, 90);

/// One line of the chart.
struct Line {
    label: String,
    colour: RGBColor,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// The lines to draw: rate (x) against latency in ms (y), open-loop phases only.
fn lines(reports: &[Report]) -> Vec<Line> {
    let points = |r: &Report, pick: Pick| {
        let mut v: Vec<(f64, f64)> = r
            .results
            .iter()
            .filter(|p| p.mode == Mode::Open && p.ok > 0)
            .filter_map(|p| p.target_rate.map(|rate| (rate as f64, pick(&p.latency_ms))))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let mut out = Vec::new();
    if let [one] = reports {
        let picks: [(&str, RGBColor, Pick); 3] = [
            ("p50", COLOURS[2], |p| p.p50),
            ("p99", COLOURS[0], |p| p.p99),
            ("p99.9", COLOURS[1], |p| p.p999),
        ];
        for (label, colour, pick) in picks {
            out.push(Line {
                label: label.to_owned(),
                colour,
                dashed: false,
                points: points(one, pick),
            });
        }
    } else {
        for (i, r) in reports.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            out.push(Line {
                label: format!("{} p99", r.scenario),
                colour,
                dashed: false,
                points: points(r, |p| p.p99),
            });
            out.push(Line {
                label: format!("{} p50", r.scenario),
                colour,
                dashed: true,
                points: points(r, |p| p.p50),
            });
        }
    }
    out.retain(|l| !l.points.is_empty());
    out
}

/// The chart's title: the scenario and setting of a single report, or a generic one.
fn title(reports: &[Report]) -> String {
    match reports {
        [r] => format!(
            "{}: latency from intended start vs offered rate ({} contacts, {} s per rate)",
            r.scenario, r.contacts, r.settings.duration_s
        ),
        [first, ..] if reports.iter().all(|r| r.contacts == first.contacts) => format!(
            "latency from intended start vs offered rate, {} contacts (solid p99, dashed p50)",
            first.contacts
        ),
        _ => "latency from intended start vs offered rate (solid p99, dashed p50)".to_owned(),
    }
}

/// Draws the chart of `reports` into an SVG document.
pub fn svg(reports: &[Report]) -> Result<String, String> {
    let lines = lines(reports);
    if lines.is_empty() {
        return Err("no open-loop results to chart (run with --sweep or --rate)".to_owned());
    }
    let all = || lines.iter().flat_map(|l| l.points.iter().copied());
    let max_rate = all().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let limits = limits(reports);
    let values = all().map(|p| p.1).chain(limits.iter().map(|l| l.0));
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = ((lo / 1.5).max(0.01), (hi * 1.5).max(lo * 2.0).max(0.1));
    let draw_err = |e: plotters::drawing::DrawingAreaErrorKind<_>| format!("chart: {e}");
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = root
            .titled(&title(reports), ("sans-serif", 18))
            .map_err(draw_err)?;
        let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..max_rate, (lo..hi).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("offered rate (requests/s)")
            .y_desc("latency (ms, log scale)")
            .max_light_lines(1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y}"))
            .draw()
            .map_err(draw_err)?;
        for line in &lines {
            let style = ShapeStyle::from(&line.colour).stroke_width(2);
            if line.dashed {
                chart.draw_series(DashedLineSeries::new(line.points.clone(), 6, 4, style))
            } else {
                chart.draw_series(LineSeries::new(line.points.clone(), style))
            }
            .map_err(draw_err)?;
            let dots = line
                .points
                .iter()
                .map(|&p| Circle::new(p, 3, line.colour.filled()));
            chart.draw_series(dots).map_err(draw_err)?;
        }
        for (limit, _) in &limits {
            let style = ShapeStyle::from(&LIMIT).stroke_width(1);
            let across = [(0.0, *limit), (max_rate, *limit)];
            chart
                .draw_series(DashedLineSeries::new(across, 2, 4, style))
                .map_err(draw_err)?;
        }
        // The legend beside the plot, where it hides no point; a limit set by several
        // reports names them on a second line.
        let entries =
            lines
                .iter()
                .map(|l| (l.label.clone(), String::new(), l.colour, l.dashed, 2))
                .chain(limits.iter().map(|(limit, of)| {
                    (format!("p99 limit {limit} ms"), of.clone(), LIMIT, true, 1)
                }));
        let mut y = 40;
        for (label, of, colour, dashed, width) in entries {
            let style = ShapeStyle::from(&colour).stroke_width(width);
            let segments: &[(i32, i32)] = if dashed {
                &[(0, 8), (12, 20), (24, 30)]
            } else {
                &[(0, 30)]
            };
            for &(a, b) in segments {
                legend
                    .draw(&PathElement::new(vec![(a, y), (b, y)], style))
                    .map_err(draw_err)?;
            }
            legend
                .draw(&Text::new(label, (38, y - 7), ("sans-serif", 13)))
                .map_err(draw_err)?;
            if !of.is_empty() {
                y += 16;
                legend
                    .draw(&Text::new(of, (38, y - 7), ("sans-serif", 11)))
                    .map_err(draw_err)?;
            }
            y += 22;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(text)
}

/// The distinct `--p99-limit`s of `reports`, each with the scenarios that set it when there
/// are several reports ("(client-info, offer)").
fn limits(reports: &[Report]) -> Vec<(f64, String)> {
    let mut out: Vec<(f64, Vec<&str>)> = Vec::new();
    for r in reports {
        let Some(limit) = r.settings.p99_limit_ms else {
            continue;
        };
        match out.iter_mut().find(|(l, _)| *l == limit) {
            Some((_, of)) => of.push(&r.scenario),
            None => out.push((limit, vec![&r.scenario])),
        }
    }
    out.into_iter()
        .map(|(limit, of)| {
            let of = if reports.len() > 1 {
                format!(" ({})", of.join(", "))
            } else {
                String::new()
            };
            (limit, of)
        })
        .collect()
}

/// Draws the chart of `reports` into the SVG file `path`.
pub fn write(reports: &[Report], path: &Path) -> Result<(), String> {
    let text = svg(reports)?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Options of `chart`.
#[derive(clap::Args)]
pub struct ChartArgs {
    /// Reports written by `run --json` (one chart with each report's p99 and p50 by rate; a
    /// single report draws its p50, p99 and p99.9).
    #[arg(required = true)]
    reports: Vec<std::path::PathBuf>,
    /// The SVG file to write.
    #[arg(long)]
    out: std::path::PathBuf,
}

/// Runs `chart`.
pub fn chart(args: ChartArgs) -> Result<(), String> {
    let reports = args
        .reports
        .iter()
        .map(|p| Report::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    write(&reports, &args.out)?;
    eprintln!("chart written to {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Phase, Settings};

    fn report(scenario: &str, rates: &[(u64, f64)]) -> Report {
        Report {
            format: crate::report::FORMAT,
            scenario: scenario.into(),
            server: String::new(),
            domain: "default".into(),
            contacts: 1000,
            started_at: 0,
            settings: Settings {
                duration_s: 5.0,
                p99_limit_ms: Some(3.0),
                ..Settings::default()
            },
            results: rates
                .iter()
                .map(|&(rate, p99)| Phase {
                    label: format!("rate {rate}/s"),
                    domain: "default".into(),
                    mode: Mode::Open,
                    target_rate: Some(rate),
                    concurrency: None,
                    seconds: 5.0,
                    scheduled: rate * 5,
                    ok: rate * 5,
                    throughput: rate as f64,
                    errors: Default::default(),
                    cap_delayed: 0,
                    unsent: 0,
                    latency_ms: Percentiles {
                        count: rate * 5,
                        p50: p99 / 4.0,
                        p90: p99 / 2.0,
                        p99,
                        p999: p99 * 2.0,
                        max: p99 * 3.0,
                        mean: p99 / 4.0,
                    },
                    service_ms: None,
                    schedule_lag_ms: None,
                    from_write_ms: None,
                })
                .collect(),
            crossing: None,
            pgbench: None,
            floor: Vec::new(),
            interference: None,
            feed: None,
        }
    }

    #[test]
    fn a_sweep_draws_an_svg_with_its_lines_and_limit() {
        let r = report("client-info", &[(1000, 1.2), (500, 0.8), (2000, 4.5)]);
        let lines = lines(std::slice::from_ref(&r));
        assert_eq!(lines.len(), 3);
        // Sorted by rate.
        assert_eq!(
            lines[1].points,
            vec![(500.0, 0.8), (1000.0, 1.2), (2000.0, 4.5)]
        );
        let svg = svg(&[r]).expect("draws");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("p99.9") && svg.contains("p99 limit 3 ms"));
        assert!(svg.contains("offered rate"));
    }

    #[test]
    fn several_reports_draw_one_colour_each() {
        let a = report("client-info", &[(500, 1.0), (1000, 2.0)]);
        let b = report("offer", &[(100, 3.0), (200, 9.0)]);
        let lines = lines(&[a.clone(), b.clone()]);
        let labels: Vec<_> = lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "client-info p99",
                "client-info p50",
                "offer p99",
                "offer p50"
            ]
        );
        let svg = svg(&[a, b]).expect("draws");
        assert!(svg.contains("offer p99"));
        // One limit line for the limit both set.
        assert_eq!(svg.matches("p99 limit 3 ms").count(), 1);
        assert!(svg.contains("(client-info, offer)"));
    }

    #[test]
    fn nothing_to_draw_is_an_error_not_an_empty_chart() {
        let empty = report("offer", &[]);
        assert!(svg(&[empty]).is_err());
        let mut closed = report("offer", &[(100, 3.0)]);
        closed.results[0].mode = Mode::Closed;
        assert!(svg(&[closed]).is_err());
    }
}
