//! CRM upkeep: edit, delete, link and unlink communications, bulk import, and the audit trail.

use std::collections::HashMap;

use super::{AppState, Call, loaders};
use crate::db::audit::{self, AuditEntry};
use crate::db::communications::LinkOutcome;
use crate::db::import::{self, Rejected};
use crate::db::{RequestConn, contacts, outbox, tx, users};
use crate::domain::contact::{
    Communication, CommunicationDraft, ContactCard, ContactDraft, ContactPatch, LinkRef,
    NewContact, UserRef,
};
use crate::domain::ids::ContactId;
use crate::domain::session::Session;
use crate::error::{Checked, Error};
use crate::wire::changes::{Change, Kind};
use crate::wire::events;

/// Records inserted per unit of work by ImportContacts.
const IMPORT_BATCH: usize = 2000;
/// Most rejected records an import reports.
pub const MAX_IMPORT_ERRORS: usize = 1000;

/// UpdateContact.
#[derive(Debug, Clone)]
pub struct Update {
    /// The contact.
    pub contact: ContactId,
    /// The version the caller edited.
    pub expected_version: i64,
    /// What changes.
    pub patch: ContactPatch,
}

/// DeleteContact.
#[derive(Debug, Clone)]
pub struct Delete {
    /// The contact.
    pub contact: ContactId,
    /// The version the caller saw (`None`: delete whatever it is now).
    pub expected_version: Option<i64>,
}

/// LinkCommunication.
#[derive(Debug, Clone)]
pub struct Link {
    /// The contact.
    pub contact: ContactId,
    /// The version the caller saw (`None`: no check).
    pub expected_version: Option<i64>,
    /// What to link (a phone is parsed in the domain's region).
    pub communication: CommunicationDraft,
    /// Move a messaging identity another contact holds.
    pub relink: bool,
}

/// UnlinkCommunication.
#[derive(Debug, Clone)]
pub struct Unlink {
    /// The contact.
    pub contact: ContactId,
    /// The version the caller saw (`None`: no check).
    pub expected_version: Option<i64>,
    /// Which link.
    pub link: LinkRef,
}

/// ListContactAudit: a page of a contact's audit trail, newest first.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    /// The contact.
    pub contact: ContactId,
    /// The page's entries have ids below this (`None`: the first page).
    pub before: Option<i64>,
    /// Entries per page.
    pub limit: usize,
}

/// A page of a contact's audit trail.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// The actors' names, by id.
    pub actors: HashMap<i64, UserRef>,
    /// The next page's token ("" on the last page).
    pub next_page_token: String,
}

/// Applies a patch; agents who have the contact on screen get the new card.
pub async fn update(state: &AppState, call: &Call, cmd: Update) -> Result<ContactCard, Error> {
    let (mut conn, session) = state.session(call).await?;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let card =
            contacts::update(tx, &session, cmd.contact, cmd.expected_version, &cmd.patch).await?;
        tx.emit(events::updated(&card));
        tx.change(Change::of(&session, Kind::Updated, &card).out());
        Ok(card)
    })
    .await
}

/// Deletes a contact; agents who had it on screen are told.
pub async fn delete(state: &AppState, call: &Call, cmd: Delete) -> Result<(), Error> {
    let (mut conn, session) = state.session(call).await?;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        // Looked up before the delete unbinds the contact's interactions.
        let agents = outbox::concerned_agents(tx, session.domain.id, &[cmd.contact]).await?;
        let was = contacts::load_cards(tx, session.domain.id, &[cmd.contact.0]).await?;
        contacts::delete(tx, &session, cmd.contact, cmd.expected_version).await?;
        tx.emit(events::deleted(agents, cmd.contact));
        if let Some(was) = was.first() {
            tx.change(Change::of(&session, Kind::Deleted, was).out());
        }
        Ok(())
    })
    .await
}

/// Links a communication; a messaging identity held by another contact moves when asked.
pub async fn link(state: &AppState, call: &Call, cmd: Link) -> Result<ContactCard, Error> {
    let (mut conn, session) = state.session(call).await?;
    let communication = Communication::resolve(
        "communication",
        cmd.communication,
        session.domain.default_region,
    )?;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let (card, outcome) = contacts::link_communication(
            tx,
            &session,
            cmd.contact,
            cmd.expected_version,
            &communication,
            cmd.relink,
        )
        .await?;
        match outcome {
            LinkOutcome::AlreadyLinked => {}
            LinkOutcome::Linked => {
                tx.emit(events::updated(&card));
                tx.change(Change::of(&session, Kind::CommunicationLinked, &card).out());
            }
            LinkOutcome::Relinked { from, link } => {
                tx.emit(events::updated(&card));
                let moved = loaders::moved(tx, &session, None, from, &link, card.id).await?;
                tx.emit_all(moved);
                let from_card = contacts::load_cards(tx, session.domain.id, &[from.0]).await?;
                tx.change_all(super::binding::relinked(&session, &card, from_card.first()));
            }
        }
        Ok(card)
    })
    .await
}

/// Unlinks a communication.
pub async fn unlink(state: &AppState, call: &Call, cmd: Unlink) -> Result<ContactCard, Error> {
    let (mut conn, session) = state.session(call).await?;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let card = contacts::unlink_communication(
            tx,
            &session,
            cmd.contact,
            cmd.expected_version,
            cmd.link,
        )
        .await?;
        tx.emit(events::updated(&card));
        tx.change(Change::of(&session, Kind::CommunicationUnlinked, &card).out());
        Ok(card)
    })
    .await
}

/// A page of the contact's audit trail (a deleted contact keeps its trail).
pub async fn audit_trail(
    state: &AppState,
    call: &Call,
    cmd: AuditTrail,
) -> Result<AuditPage, Error> {
    let (mut conn, session) = state.read_session(call).await?;
    let domain = session.domain.id;
    let limit = i64::try_from(cmd.limit).unwrap_or(i64::MAX - 1);
    let mut entries =
        audit::for_contact(&mut conn, domain, cmd.contact, cmd.before, limit + 1).await?;
    // Deleted contacts keep their trail; a contact with neither trail nor row is unknown.
    if entries.is_empty()
        && cmd.before.is_none()
        && !contacts::exists(&mut conn, domain, cmd.contact).await?
    {
        return Err(Error::contact_not_found(cmd.contact));
    }
    let has_more = entries.len() > cmd.limit;
    entries.truncate(cmd.limit);
    let ids: Vec<i64> = entries.iter().map(|e| e.actor_id).collect();
    let actors = users::refs(&mut conn, domain, &ids).await?;
    let next_page_token = match entries.last() {
        Some(last) if has_more => last.id.to_string(),
        _ => String::new(),
    };
    Ok(AuditPage {
        entries,
        actors,
        next_page_token,
    })
}

/// A record of an import as decoded: its new contact and communications with their field
/// paths, or the violations found in it.
pub type ImportRecord = Checked<(NewContact, Vec<(String, CommunicationDraft)>)>;

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    /// Records received.
    pub received: i64,
    /// Records imported.
    pub imported: i64,
    /// Records rejected, by index (at most [`MAX_IMPORT_ERRORS`]).
    pub rejected: Vec<Rejected>,
}

/// ImportContacts, record by record: each decoded record is resolved in the caller's domain
/// (owner, phones) and batched; every 2,000 records are written as one unit of
/// work, so what was written stays when the stream breaks off later. One session and one
/// pooled connection for the whole import.
pub struct Import {
    conn: RequestConn,
    session: Session,
    batch: Vec<(i64, ContactDraft)>,
    summary: ImportSummary,
}

impl std::fmt::Debug for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Import {
    /// Opens the caller's session for an import.
    pub async fn start(state: &AppState, call: &Call) -> Result<Self, Error> {
        let (conn, session) = state.session(call).await?;
        Ok(Self {
            conn,
            session,
            batch: Vec::with_capacity(IMPORT_BATCH),
            summary: ImportSummary::default(),
        })
    }

    /// Records received and imported so far.
    pub fn progress(&self) -> (i64, i64) {
        (self.summary.received, self.summary.imported)
    }

    /// Takes the next record; writes a batch when one is full.
    pub async fn push(&mut self, state: &AppState, record: ImportRecord) -> Result<(), Error> {
        let index = self.summary.received;
        self.summary.received += 1;
        let region = self.session.domain.default_region;
        let owner = self.session.caller.user_id;
        match record.and_then(|(new, drafts)| ContactDraft::resolve(new, drafts, owner, region)) {
            Ok(draft) => self.batch.push((index, draft)),
            Err(violations) => {
                for fv in violations {
                    self.reject(Rejected {
                        index,
                        field: fv.field,
                        description: fv.description,
                    });
                }
            }
        }
        if self.batch.len() >= IMPORT_BATCH {
            self.flush(state).await?;
        }
        Ok(())
    }

    /// Writes what is left; the summary, rejections by index.
    pub async fn finish(mut self, state: &AppState) -> Result<ImportSummary, Error> {
        if !self.batch.is_empty() {
            self.flush(state).await?;
        }
        self.summary.rejected.sort_by_key(|r| r.index);
        Ok(self.summary)
    }

    fn reject(&mut self, r: Rejected) {
        if self.summary.rejected.len() < MAX_IMPORT_ERRORS {
            self.summary.rejected.push(r);
        }
    }

    /// Writes the batch as one unit of work.
    async fn flush(&mut self, state: &AppState) -> Result<(), Error> {
        let (session, batch) = (&self.session, &self.batch);
        let (ids, rejected) =
            tx::write(&mut self.conn, &state.hub, session.domain.id, async |tx| {
                let (ids, rejected) = import::insert_batch(tx, session, batch).await?;
                // The change feed gets each new card, read back in one statement.
                let raw: Vec<i64> = ids.iter().map(|c| c.0).collect();
                let cards = import::cards_of_batch(tx, session.domain.id, &raw).await?;
                tx.change_all(
                    cards
                        .iter()
                        .map(|card| Change::of(session, Kind::Created, card).out()),
                );
                Ok((ids, rejected))
            })
            .await?;
        self.summary.imported += i64::try_from(ids.len()).unwrap_or(0);
        for r in rejected {
            self.reject(r);
        }
        self.batch.clear();
        Ok(())
    }
}
