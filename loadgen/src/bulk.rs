//! The bulk load of a two-domain run (`run SCENARIO --bulk-domain NAME`): a CRM sync of a large
//! tenant, which walks its contacts and rewrites each one through the SDK as a CRM pushing its
//! own records would: find the contact by the CRM's key (SearchContacts by attribute `crm_id`),
//! then UpdateContact at the version read, with a new description and attributes. Every edit
//! is a write of the bulk domain (a contact change, its audit record and events). And a
//! sampler of the backends waiting on a lock, to tell lock waits from CPU contention on a
//! shared machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use client_info_sdk::{Client, SdkError, pb};

use crate::data;
use crate::report::LockWaits;
use crate::seed::State;

fn code(e: &SdkError) -> String {
    format!("{:?}", e.code())
}

/// Syncs contact `i` of the bulk domain: looks it up by its CRM id and rewrites its
/// description and attributes (the CRM id and tier kept, a `synced` stamp added). A contact
/// that is not found is the error `NotFound`.
pub async fn edit(crm: &Client, i: u64, stamp: u64) -> Result<(), String> {
    let found = crm
        .search_contacts(pb::SearchContactsRequest {
            attributes: vec![pb::AttributeCondition {
                key: "crm_id".into(),
                value: data::crm_id(i),
            }],
            page_size: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| code(&e))?;
    let card = found
        .hits
        .into_iter()
        .find_map(|h| match h.contact?.view? {
            pb::contact_view::View::Contact(c) => Some(c),
            pb::contact_view::View::Summary(_) => None,
        })
        .ok_or_else(|| "NotFound".to_owned())?;
    crm.edit_contact(card.id, card.version)
        .description(format!("Synced from the CRM, run {stamp}."))
        .attributes([
            ("crm_id", data::crm_id(i)),
            ("tier", data::tier(i).to_owned()),
            ("synced", stamp.to_string()),
        ])
        .await
        .map_err(|e| code(&e))?;
    Ok(())
}

/// How often the lock sampler looks.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Samples `pg_stat_activity` of the state's database every [`SAMPLE_EVERY`] (through psql)
/// until stopped: how many backends wait on a heavyweight lock (a row or transaction id held by
/// another transaction, a relation).
pub struct LockSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<LockWaits>,
}

impl LockSampler {
    /// Starts sampling.
    pub fn start(state: &State) -> LockSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let url = state.database_url.clone();
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut waits = LockWaits::default();
            while !flag.load(Ordering::Relaxed) {
                let out = std::process::Command::new("psql")
                    .args(["-Atq", "-c"])
                    .arg(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE wait_event_type = 'Lock' AND datname = current_database()",
                    )
                    .arg(&url)
                    .output();
                let waiting = out.ok().filter(|o| o.status.success()).and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u64>()
                        .ok()
                });
                if let Some(n) = waiting {
                    waits.samples += 1;
                    waits.waiting += n;
                    waits.max = waits.max.max(n);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            waits
        });
        LockSampler { stop, task }
    }

    /// Stops sampling and returns what it saw.
    pub async fn stop(self) -> LockWaits {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
