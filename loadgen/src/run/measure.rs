//! Measuring one phase: the run's scenario under one load (closed or open loop) for a
//! duration, with a progress line per second (`measure`, `measure_run`, `measure_printed`),
//! and with the database's lock waits sampled meanwhile (`sampled`).
//!
//! Imports the run's arguments and client side (`args`, `ops`) and the crate's engine and
//! report; not the drivers of the runs made of several phases.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::args::{DEFAULT_MAX_IN_FLIGHT, RunArgs};
use super::ops::{Ctx, code_name, op};
use crate::bulk::LockSampler;
use crate::engine::{self, Counters, OpenLoop};
use crate::report::{Load, LockWaits, Phase};
use crate::scenario::Scenario;

/// Prints a progress line per second until aborted: answers and errors of the last second,
/// requests in flight in open loop, and the bulk load's edits when there is one.
pub(super) fn progress(
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

/// [`measure`] of the run's scenario for its `--duration` under `load`.
pub(super) async fn measure_run(
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
pub(super) async fn measure_printed(
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
pub(super) async fn measure(
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

/// [`measure`] with the lock waits of the measured domain's database sampled meanwhile.
pub(super) async fn sampled(
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
