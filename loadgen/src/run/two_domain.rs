//! The two-domain run (`--bulk-domain NAME`): the scenario alone (baseline), then again while a
//! bulk update runs in another domain (loaded), and how much the bulk slowed it
//! (`two_domain`; the bulk's edits are `crate::bulk`).
//!
//! Imports the run's arguments, client side, vacuum and measurement (`args`, `ops`, `vacuum`,
//! `measure`); not the run's entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::args::{DEFAULT_BULK_CLIENTS, RunArgs};
use super::measure::sampled;
use super::ops::{Ctx, close_all, connect};
use super::vacuum::vacuum_if_needed;
use crate::Target;
use crate::bulk;
use crate::engine::{self, Counters, OpenLoop};
use crate::report::{Interference, Load, Phase};
use crate::seed::State;

/// Two-domain run: how long the bulk load runs before the loaded phase is measured.
const BULK_WARMUP: Duration = Duration::from_secs(2);

/// The two-domain run: the scenario alone, then with the bulk load running in `bulk`'s
/// domain; returns the baseline, loaded and bulk phases and their comparison.
pub(super) async fn two_domain(
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
