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

/// What the sampler asks: the backends of the database waiting for a lock, by the kind of
/// lock. `notify` is the lock every transaction that sent NOTIFY takes at commit (an
/// exclusive lock on object 0 of `pg_database`, one for the whole PostgreSQL cluster), which
/// serialises the commits of all notifying writers, whatever their domain or database;
/// `transactionid` and `tuple` are row locks held by another transaction; `extend`, a table
/// being extended; `advisory`, advisory locks.
const LOCK_WAITS_SQL: &str = "SELECT CASE WHEN l.locktype = 'object' \
AND l.classid = 'pg_database'::regclass AND l.objid = 0 THEN 'notify' ELSE l.locktype END, \
count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
WHERE NOT l.granted AND a.datname = current_database() GROUP BY 1";

/// Parses the sampler's `psql -At` output (`kind|count` lines) into `waits`; false when it is
/// not that shape.
fn add_sample(waits: &mut LockWaits, out: &str) -> bool {
    let mut sample = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let Some((kind, n)) = line.split_once('|') else {
            return false;
        };
        let Ok(n) = n.trim().parse::<u64>() else {
            return false;
        };
        sample.push((kind.trim().to_owned(), n));
    }
    let total: u64 = sample.iter().map(|(_, n)| n).sum();
    waits.samples += 1;
    waits.waiting += total;
    waits.max = waits.max.max(total);
    for (kind, n) in sample {
        *waits.by_kind.entry(kind).or_default() += n;
    }
    true
}

/// Samples the lock waits of the state's database ([`LOCK_WAITS_SQL`], through psql) every
/// [`SAMPLE_EVERY`] until stopped.
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
                    .args(["-Atq", "-c", LOCK_WAITS_SQL])
                    .arg(&url)
                    .output();
                if let Ok(o) = out
                    && o.status.success()
                {
                    add_sample(&mut waits, &String::from_utf8_lossy(&o.stdout));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_add_up_by_kind() {
        let mut w = LockWaits::default();
        assert!(add_sample(&mut w, "notify|3\ntransactionid|1\n"));
        assert!(add_sample(&mut w, ""));
        assert!(add_sample(&mut w, "notify|2\n"));
        assert_eq!((w.samples, w.waiting, w.max), (3, 6, 4));
        assert_eq!(w.by_kind.get("notify"), Some(&5));
        assert_eq!(w.by_kind.get("transactionid"), Some(&1));
        assert!(!add_sample(&mut w, "psql: error: connection refused"));
        assert!(!add_sample(&mut w, "notify|x"));
        assert_eq!(w.samples, 3);
    }
}
