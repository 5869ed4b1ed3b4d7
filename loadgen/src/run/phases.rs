//! The phases of a run that is not watch, as its plan has them (`measure_all`): the warm-up,
//! then the two-domain run, or the closed loop beside its floor, or each rate in turn with the
//! p99 limit and the open-loop floor.
//!
//! Imports the drivers below it (`two_domain`, `with_floor`, `measure`) and the run's arguments
//! and client side (`args`, `ops`); only the run's entry (`mod.rs`) imports it.

use std::sync::Arc;

use super::args::{DEFAULT_MAX_IN_FLIGHT, Plan, RunArgs};
use super::measure::{measure, measure_printed};
use super::ops::{Ctx, fresh_start};
use super::two_domain::two_domain;
use super::with_floor::{closed_with_floor, open_floor};
use crate::Target;
use crate::report::{Crossing, Load, Report};
use crate::seed::State;

/// Runs the plan's phases (and the floor) into `report`.
pub(super) async fn measure_all(
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
