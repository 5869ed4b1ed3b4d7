//! The RPC phases beside their SQL floor (`--pgbench`): closed loop, the RPC run then pgbench
//! at the same concurrency, `--rounds` times (`closed_with_floor`); open loop, the scenario's
//! SQL replayed straight to PostgreSQL at each rate (`open_floor`).
//!
//! Imports the run's arguments, client side, vacuum and measurement (`args`, `ops`, `vacuum`,
//! `measure`) and the crate's floor (`floor`, `replay`); not the run's entry.

use std::sync::Arc;

use super::args::{DEFAULT_MAX_IN_FLIGHT, RunArgs};
use super::measure::measure_printed;
use super::ops::{Ctx, fresh_start};
use super::vacuum::vacuum_if_needed;
use crate::engine::OpenLoop;
use crate::floor;
use crate::report::{Crossing, Floor, Load, Percentiles, Phase, Report};

/// Open loop with `--pgbench`: the PostgreSQL connections the SQL is replayed over (pgbench's
/// `-c` in the closed-loop runs).
pub const FLOOR_CONNECTIONS: usize = 16;

/// Why `watch --pgbench` has no ratio.
pub(super) const NO_WATCH_FLOOR: &str = "pgbench: none for watch, which measures delivery latency at a \
fixed rate, not throughput; the SQL behind each event, the offer transaction, is floored by \
`run offer --pgbench`";

/// A closed-loop run with its pgbench floor: `--rounds` times the RPC run then pgbench, each
/// round's ratio printed, the median kept.
pub(super) async fn closed_with_floor(
    ctx: &Arc<Ctx>,
    args: &RunArgs,
    concurrency: usize,
    report: &mut Report,
) -> Result<(), String> {
    let Some(script) = floor::script(args.scenario) else {
        if args.scenario.streams() {
            println!("{NO_WATCH_FLOOR}");
        } else {
            println!(
                "pgbench: none for {}, whose statements depend on what the server checks between \
                 them (the distances of the words the lookup found); run it without --pgbench",
                args.scenario.name()
            );
        }
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

/// The open-loop floor: the scenario's SQL replayed straight to PostgreSQL at each rate, on
/// the same schedule, with the same warm-up (see `replay.rs`).
pub(super) async fn open_floor(
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
