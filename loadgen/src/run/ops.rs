//! The client side of the run: the run's context (`Ctx`: the connections, the agents'
//! clients, the interactions opened), one request of a scenario (`op`), connecting to the
//! server, and the clean-up between phases (`fresh_start`, `close_all`).
//!
//! Imports the run's arguments and vacuum (`args`, `vacuum`), the shared `Scenario`, and the
//! crate's data and state; nothing that measures or drives a phase.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_info_sdk::interactions::{attribute_key, call, chat};
use client_info_sdk::{Client, SdkError, pb};
use rand::Rng as _;

use super::args::RunArgs;
use super::vacuum::vacuum_if_needed;
use crate::Target;
use crate::data;
use crate::scenario::Scenario;
use crate::seed::State;

/// What every request of the run needs: the measured domain, its clients and the run's ids.
pub(super) struct Ctx {
    /// The measured domain of the state file.
    pub(super) state: State,
    /// The state file's name of the domain (`default` or a `seed --domain` name).
    pub(super) domain: String,
    /// Routing on the first connection: the setup and the closing of interactions.
    pub(super) routing: Client,
    /// One per connection: worker `w` sends on `lanes[w % len]`.
    pub(super) lanes: Vec<Lane>,
    /// Agent `a`'s client, on connection `a % lanes.len()`.
    pub(super) agents: Vec<Client>,
    /// The run's start in milliseconds since the epoch, in the ids it creates.
    pub(super) stamp: u64,
    /// Numbers the requests of the run, across phases, so that ids never repeat.
    pub(super) seq: AtomicU64,
    /// ClientInfo: offered interactions and the index of their agent.
    pub(super) offered: Vec<(String, usize)>,
    /// Interactions the scenario's requests opened, closed after each phase (the offered
    /// ones above, at the end of the run).
    pub(super) opened: Mutex<Vec<String>>,
}

/// One connection and the callers that send on it.
pub(super) struct Lane {
    /// The routing service user's client.
    pub(super) routing: Client,
    /// The CRM service user's client.
    pub(super) crm: Client,
}

impl Ctx {
    /// The connection worker `worker` sends on.
    fn lane(&self, worker: usize) -> &Lane {
        &self.lanes[worker % self.lanes.len()]
    }

    /// Keeps `iid` to be closed after the phase.
    fn opened(&self, iid: &str) {
        if let Ok(mut v) = self.opened.lock() {
            v.push(iid.to_owned());
        }
    }

    /// The interactions opened since the last call, to close.
    pub(super) fn take_opened(&self) -> Vec<String> {
        self.opened
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// The floor scripts' variables beyond the state's: the run's stamp and the number of
    /// interactions offered for GetClientInfo.
    pub(super) fn floor_vars(&self) -> [(&'static str, String); 2] {
        [
            ("stamp", self.stamp.to_string()),
            ("offered", self.offered.len().max(1).to_string()),
        ]
    }

    /// The next request's number (from 1).
    pub(super) fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Before a phase that must start as a run of its own would: the interactions the phases
/// before opened are closed and, for a writing scenario, their dead rows vacuumed.
pub(super) async fn fresh_start(ctx: &Ctx, args: &RunArgs) {
    close_all(&ctx.routing, ctx.take_opened()).await;
    if args.scenario.writes() && !args.no_vacuum {
        vacuum_if_needed(&ctx.state);
    }
}

/// Closes the interactions a run opened (untimed), as routing would when they end, so that
/// one run's backlog of open interactions does not weigh on the next.
pub(super) async fn close_all(routing: &Client, ids: Vec<String>) {
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

/// Offers `count` calls (ids `PREFIX-STAMP-K`) to the domain's agents in turn, to be read as
/// panels and kept open to the end of the run; each call's id and agent index.
pub(super) async fn offer_open_calls(
    routing: &Client,
    state: &State,
    prefix: &str,
    stamp: u64,
    count: usize,
) -> Result<Vec<(String, usize)>, String> {
    let mut offered = Vec::with_capacity(count);
    for k in 0..count {
        let agent = k % state.agents.len();
        let iid = format!("{prefix}-{stamp}-{k}");
        routing
            .offer_interaction(call(
                &iid,
                data::written(random_index(state), k as u64),
                state.agents[agent].id,
            ))
            .await
            .map_err(|e| format!("setup offer: {e}"))?;
        offered.push((iid, agent));
    }
    Ok(offered)
}

/// A random contact index of the domain.
pub(super) fn random_index(state: &State) -> u64 {
    rand::rng().random_range(0..state.contacts.max(1))
}

/// One request of `scenario` by worker `worker`, the run's `n`th; the time it took (for
/// create-relink, the create alone).
pub(super) async fn op(
    ctx: &Ctx,
    scenario: Scenario,
    worker: usize,
    n: u64,
) -> Result<Duration, SdkError> {
    let started = Instant::now();
    match scenario {
        Scenario::Offer | Scenario::OfferKeys => {
            let i = random_index(&ctx.state);
            let agent = rand::rng().random_range(0..ctx.agents.len());
            let iid = format!("of-{}-{worker}-{n}", ctx.stamp);
            let mut req = call(&iid, data::written(i, n), ctx.state.agents[agent].id);
            if scenario == Scenario::OfferKeys {
                req.identification_keys = vec![attribute_key(
                    "crm_id",
                    data::crm_id(i),
                    "entered in the IVR",
                )];
            }
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
        | Scenario::SearchTypo
        | Scenario::SearchNameTypo
        | Scenario::SearchNothing => {
            let i = random_index(&ctx.state);
            let name = match scenario {
                Scenario::SearchFirstName => data::first_name(i).to_owned(),
                Scenario::SearchSurname => data::surname(i).to_owned(),
                Scenario::SearchTypo => data::name_typo(i).0,
                Scenario::SearchNameTypo => data::full_name_typo(i),
                Scenario::SearchNothing => data::nobody(i % 4096),
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
        Scenario::Watch | Scenario::Changes => {
            unreachable!("watch and changes have their own drivers")
        }
    }
    Ok(started.elapsed())
}

/// The status code of an error, as the reports count errors.
pub(super) fn code_name(e: &SdkError) -> String {
    format!("{:?}", e.code())
}

/// A client of the target with `token` and a 30 s timeout.
pub(super) async fn connect(target: &Target, token: &str) -> Result<Client, String> {
    target
        .builder(token)
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| e.to_string())
}
