//! Phones, e-mails and messaging identities linked to contacts.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{contact_emails, contact_messaging_channels, contact_phones};
use crate::domain::contact::{ChannelIdentity, ChannelLink, Communication, LinkRef};
use crate::domain::ids::{ContactId, DomainId};
use crate::error::{Error, Fault, Reason};

/// What linking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// A new link was made.
    Linked,
    /// The contact already had it; nothing changed.
    AlreadyLinked,
    /// A messaging identity moved here from another contact.
    Relinked {
        /// The contact that held it.
        from: ContactId,
        /// The identity that moved.
        link: ChannelLink,
    },
}

/// Links one communication to `contact`. A messaging identity held by another contact moves
/// when `relink` is set and is ALREADY_EXISTS otherwise. Call inside a transaction.
pub async fn link(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    communication: &Communication,
    relink: bool,
) -> Result<LinkOutcome, Error> {
    match communication {
        Communication::Phone { raw, parsed } => {
            let n = diesel::insert_into(contact_phones::table)
                .values((
                    contact_phones::domain_id.eq(domain.0),
                    contact_phones::contact_id.eq(contact.0),
                    contact_phones::number.eq(raw),
                    contact_phones::e164.eq(&parsed.e164),
                    contact_phones::region.eq(&parsed.region),
                    contact_phones::national_number.eq(&parsed.national_number),
                    contact_phones::digits_reversed.eq(&parsed.digits_reversed),
                ))
                .on_conflict((contact_phones::contact_id, contact_phones::e164))
                .do_nothing()
                .execute(conn)
                .await?;
            Ok(if n == 1 {
                LinkOutcome::Linked
            } else {
                LinkOutcome::AlreadyLinked
            })
        }
        Communication::Email(email) => {
            let n = diesel::insert_into(contact_emails::table)
                .values((
                    contact_emails::domain_id.eq(domain.0),
                    contact_emails::contact_id.eq(contact.0),
                    contact_emails::address.eq(&email.address),
                    contact_emails::normalized.eq(&email.normalized),
                ))
                .on_conflict((contact_emails::contact_id, contact_emails::normalized))
                .do_nothing()
                .execute(conn)
                .await?;
            Ok(if n == 1 {
                LinkOutcome::Linked
            } else {
                LinkOutcome::AlreadyLinked
            })
        }
        Communication::Channel(identity) => {
            link_channel(conn, domain, contact, identity, relink).await
        }
    }
}

/// Locks a messaging identity's row, if it exists (call in a transaction). Writers that may
/// move an identity take this lock before any contact lock, so two of them never wait on each
/// other in opposite orders.
pub async fn lock_identity(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    identity: &ChannelIdentity,
) -> Result<(), Error> {
    contact_messaging_channels::table
        .filter(contact_messaging_channels::domain_id.eq(domain.0))
        .filter(contact_messaging_channels::protocol.eq(&identity.protocol))
        .filter(contact_messaging_channels::external_user_id.eq(&identity.external_user_id))
        .select(contact_messaging_channels::id)
        .for_update()
        .load::<i64>(conn)
        .await?;
    Ok(())
}

async fn link_channel(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    identity: &ChannelIdentity,
    relink: bool,
) -> Result<LinkOutcome, Error> {
    // Two rounds: a concurrent insert of the same identity between our look-up and our insert
    // makes the insert do nothing; the second look-up then sees (and locks) that row.
    for _ in 0..2 {
        let holder: Option<(i64, i64)> = contact_messaging_channels::table
            .filter(contact_messaging_channels::domain_id.eq(domain.0))
            .filter(contact_messaging_channels::protocol.eq(&identity.protocol))
            .filter(contact_messaging_channels::external_user_id.eq(&identity.external_user_id))
            .select((
                contact_messaging_channels::id,
                contact_messaging_channels::contact_id,
            ))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        match holder {
            None => {
                let inserted = diesel::insert_into(contact_messaging_channels::table)
                    .values((
                        contact_messaging_channels::domain_id.eq(domain.0),
                        contact_messaging_channels::contact_id.eq(contact.0),
                        contact_messaging_channels::protocol.eq(&identity.protocol),
                        contact_messaging_channels::external_user_id.eq(&identity.external_user_id),
                        contact_messaging_channels::display_name.eq(&identity.display_name),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                if inserted == 1 {
                    return Ok(LinkOutcome::Linked);
                }
            }
            Some((_, holder)) if holder == contact.0 => return Ok(LinkOutcome::AlreadyLinked),
            Some((link_id, holder)) => {
                if !relink {
                    return Err(Error::AlreadyExists(
                        Fault::new(
                            Reason::IdentityHeldByOtherContact,
                            format!(
                                "the {} identity is linked to contact {holder}; set relink to move it",
                                identity.protocol
                            ),
                        )
                        .about(format!("contact/{holder}"))
                        .with("holder_contact_id", holder),
                    ));
                }
                diesel::update(contact_messaging_channels::table.find(link_id))
                    .set((
                        contact_messaging_channels::contact_id.eq(contact.0),
                        contact_messaging_channels::display_name.eq(&identity.display_name),
                    ))
                    .execute(conn)
                    .await?;
                return Ok(LinkOutcome::Relinked {
                    from: ContactId(holder),
                    link: ChannelLink {
                        id: link_id,
                        identity: identity.clone(),
                    },
                });
            }
        }
    }
    Err(Error::concurrent(
        "the messaging identity changed hands concurrently; retry",
    ))
}

/// Removes a link of `contact`. NOT_FOUND when the contact has no such link.
pub async fn unlink(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    contact: ContactId,
    link: LinkRef,
) -> Result<(), Error> {
    let n = match link {
        LinkRef::Phone(id) => {
            diesel::delete(
                contact_phones::table
                    .filter(contact_phones::domain_id.eq(domain.0))
                    .filter(contact_phones::contact_id.eq(contact.0))
                    .filter(contact_phones::id.eq(id)),
            )
            .execute(conn)
            .await?
        }
        LinkRef::Email(id) => {
            diesel::delete(
                contact_emails::table
                    .filter(contact_emails::domain_id.eq(domain.0))
                    .filter(contact_emails::contact_id.eq(contact.0))
                    .filter(contact_emails::id.eq(id)),
            )
            .execute(conn)
            .await?
        }
        LinkRef::Channel(id) => {
            diesel::delete(
                contact_messaging_channels::table
                    .filter(contact_messaging_channels::domain_id.eq(domain.0))
                    .filter(contact_messaging_channels::contact_id.eq(contact.0))
                    .filter(contact_messaging_channels::id.eq(id)),
            )
            .execute(conn)
            .await?
        }
    };
    if n == 0 {
        return Err(Error::NotFound(
            Fault::new(
                Reason::CommunicationNotFound,
                format!("communication of contact {contact} not found"),
            )
            .about(format!("contact/{contact}")),
        ));
    }
    Ok(())
}
