//! CRM upkeep: edit, delete, link and unlink communications, bulk import.

use client_info_proto::pb;

use crate::auth::Caller;
use crate::db::communications::{LinkOutcome, LinkRef};
use crate::db::contacts::{self, ContactDraft};
use crate::db::import::{self, Rejected};
use crate::db::{outbox, tx};
use crate::domain::contact::{CommunicationDraft, ContactCard, ContactPatch};
use crate::domain::ids::ContactId;
use crate::error::Error;
use crate::grpc::{AppState, convert, events};

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

/// Applies a patch; agents who have the contact on screen get the new card.
pub async fn update(state: &AppState, caller: Caller, cmd: Update) -> Result<ContactCard, Error> {
    let (mut conn, session) = state.session(caller).await?;
    let keys = &state.keys;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let card =
            contacts::update(tx, &session, cmd.contact, cmd.expected_version, &cmd.patch).await?;
        tx.emit(events::updated(&session, keys, &card)?);
        Ok(card)
    })
    .await
}

/// Deletes a contact; agents who had it on screen are told.
pub async fn delete(state: &AppState, caller: Caller, cmd: Delete) -> Result<(), Error> {
    let (mut conn, session) = state.session(caller).await?;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        // Looked up before the delete unbinds the contact's interactions.
        let agents = outbox::concerned_agents(tx, session.domain.id, &[cmd.contact]).await?;
        contacts::delete(tx, &session, cmd.contact, cmd.expected_version).await?;
        tx.emit(events::out(
            agents,
            pb::agent_event::Event::ContactDeleted(pb::ContactDeleted {
                contact_id: cmd.contact.0,
            }),
        ));
        Ok(())
    })
    .await
}

/// Links a communication; a messaging identity held by another contact moves when asked.
pub async fn link(state: &AppState, caller: Caller, cmd: Link) -> Result<ContactCard, Error> {
    let (mut conn, session) = state.session(caller).await?;
    let communication = convert::resolve_communication(
        "communication",
        cmd.communication,
        session.domain.default_region,
    )?;
    let keys = &state.keys;
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
        if outcome != LinkOutcome::AlreadyLinked {
            tx.emit(events::updated(&session, keys, &card)?);
            if let LinkOutcome::Relinked { from, link } = outcome {
                let moved =
                    events::moved(tx, &session, keys, None, &Some((from, link)), card.id).await?;
                tx.emit_all(moved);
            }
        }
        Ok(card)
    })
    .await
}

/// Unlinks a communication.
pub async fn unlink(state: &AppState, caller: Caller, cmd: Unlink) -> Result<ContactCard, Error> {
    let (mut conn, session) = state.session(caller).await?;
    let keys = &state.keys;
    tx::write(&mut conn, &state.hub, session.domain.id, async |tx| {
        let card = contacts::unlink_communication(
            tx,
            &session,
            cmd.contact,
            cmd.expected_version,
            cmd.link,
        )
        .await?;
        tx.emit(events::updated(&session, keys, &card)?);
        Ok(card)
    })
    .await
}

/// Imports a batch of validated records (`(index, draft)`) as one unit of work; returns how
/// many were imported and the records rejected.
pub async fn import_batch(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    session: &crate::db::domains::Session,
    batch: &[(i64, ContactDraft)],
) -> Result<(usize, Vec<Rejected>), Error> {
    tx::write(conn, &state.hub, session.domain.id, async |tx| {
        import::insert_batch(tx, session, batch).await
    })
    .await
}
