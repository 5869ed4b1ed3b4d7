//! `ContactBindingService` requests: create, select, unbind, link and unlink, a contact's
//! interaction history, read-only links.

use client_info_proto::pb;
use prost::Message as _;

use super::{
    ContactFields, client_id, communication, contact_id, id_page_token, new_contact,
    optional_client_id, optional_version, page_size, positive_id, text,
};
use crate::app::binding::{
    CreateContact, CreateFrom, History, ListLinks, ReadOnlyLink, Revoke, RevokeLinks, Select,
    Unbind,
};
use crate::app::contacts::{Link, Unlink};
use crate::domain::contact::LinkRef;
use crate::domain::text::TextRule;
use crate::error::{AllValid, Checked, Violations};

/// Longest read-only link accepted.
const MAX_LINK_LEN: usize = 4096;

/// The request body without its request id, hex-encoded: equal bodies give equal strings
/// (prost encodes fields in order).
fn fingerprint(req: &pb::CreateContactRequest) -> String {
    use std::fmt::Write as _;
    let mut body = req.clone();
    body.request_id.clear();
    body.encode_to_vec().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// CreateContact: from the CRM, or from a live interaction (then a request id is required, so
/// that a retry cannot duplicate the contact).
pub fn create_contact(req: &pb::CreateContactRequest) -> Checked<CreateContact> {
    let from = if req.interaction_id.is_empty() {
        let request_id = if req.request_id.is_empty() {
            Ok(None)
        } else {
            client_id("request_id", &req.request_id).map(Some)
        };
        let link = if req.link_caller_number {
            Err(Violations::one(
                "link_caller_number",
                "needs an interaction_id",
            ))
        } else {
            Ok(())
        };
        (request_id, link)
            .all_valid()
            .map(|(request_id, ())| CreateFrom::Crm { request_id })
    } else {
        let request_id = if req.request_id.is_empty() {
            Err(Violations::one(
                "request_id",
                "is required when creating from an interaction (retries must not duplicate)",
            ))
        } else {
            client_id("request_id", &req.request_id)
        };
        (client_id("interaction_id", &req.interaction_id), request_id)
            .all_valid()
            .map(|(interaction, request_id)| CreateFrom::Interaction {
                interaction,
                request_id,
                link_caller_number: req.link_caller_number,
            })
    };
    let (from, (contact, communications)) = (
        from,
        new_contact(&ContactFields {
            display_name: &req.display_name,
            description: &req.description,
            time_zone: &req.time_zone,
            owner_id: req.owner_id,
            labels: &req.labels,
            attributes: &req.attributes,
            communications: &req.communications,
        }),
    )
        .all_valid()?;
    Ok(CreateContact {
        contact,
        communications,
        from,
        fingerprint: fingerprint(req),
    })
}

/// SelectContact.
pub fn select_contact(req: &pb::SelectContactRequest) -> Checked<Select> {
    let (interaction, contact) = (
        client_id("interaction_id", &req.interaction_id),
        contact_id("contact_id", req.contact_id),
    )
        .all_valid()?;
    Ok(Select {
        interaction,
        contact,
        relink_channel: req.relink_channel,
    })
}

/// UnbindContact.
pub fn unbind_contact(req: &pb::UnbindContactRequest) -> Checked<Unbind> {
    Ok(Unbind {
        interaction: client_id("interaction_id", &req.interaction_id)?,
    })
}

/// LinkCommunication.
pub fn link_communication(req: &pb::LinkCommunicationRequest) -> Checked<Link> {
    let (contact, expected_version, communication) = (
        contact_id("contact_id", req.contact_id),
        optional_version("expected_version", req.expected_version),
        communication("communication", req.communication.as_ref()),
    )
        .all_valid()?;
    Ok(Link {
        contact,
        expected_version,
        communication,
        relink: req.relink,
    })
}

/// UnlinkCommunication.
pub fn unlink_communication(req: &pb::UnlinkCommunicationRequest) -> Checked<Unlink> {
    let (contact, expected_version, link) = (
        contact_id("contact_id", req.contact_id),
        optional_version("expected_version", req.expected_version),
        link_ref(req.communication.as_ref()),
    )
        .all_valid()?;
    Ok(Unlink {
        contact,
        expected_version,
        link,
    })
}

/// Which link an UnlinkCommunication request names.
pub fn link_ref(
    input: Option<&pb::unlink_communication_request::Communication>,
) -> Checked<LinkRef> {
    use pb::unlink_communication_request::Communication as C;
    let (field, id, make): (&str, i64, fn(i64) -> LinkRef) = match input {
        None => {
            return Err(Violations::one(
                "communication",
                "set one of phone_id, email_id or messaging_channel_id",
            ));
        }
        Some(C::PhoneId(id)) => ("phone_id", *id, LinkRef::Phone),
        Some(C::EmailId(id)) => ("email_id", *id, LinkRef::Email),
        Some(C::MessagingChannelId(id)) => ("messaging_channel_id", *id, LinkRef::Channel),
    };
    positive_id(field, id).map(make)
}

/// ListContactInteractions.
pub fn list_contact_interactions(req: &pb::ListContactInteractionsRequest) -> Checked<History> {
    let (contact, limit, before) = (
        contact_id("contact_id", req.contact_id),
        page_size("page_size", req.page_size),
        id_page_token(&req.page_token),
    )
        .all_valid()?;
    Ok(History {
        contact,
        before,
        limit,
    })
}

/// CreateReadOnlyLink.
pub fn create_read_only_link(req: &pb::CreateReadOnlyLinkRequest) -> Checked<ReadOnlyLink> {
    let (contact, interaction) = (
        contact_id("contact_id", req.contact_id),
        optional_client_id("interaction_id", &req.interaction_id),
    )
        .all_valid()?;
    Ok(ReadOnlyLink {
        contact,
        interaction,
    })
}

/// GetContactByLink: the link's text (its signature is checked by the application layer).
pub fn get_contact_by_link(req: &pb::GetContactByLinkRequest) -> Checked<String> {
    text("link", &req.link, TextRule::line(MAX_LINK_LEN).required())
}

/// ListReadOnlyLinks: the contact and the page.
pub fn list_read_only_links(req: &pb::ListReadOnlyLinksRequest) -> Checked<ListLinks> {
    let (contact, limit, before) = (
        contact_id("contact_id", req.contact_id),
        page_size("page_size", req.page_size),
        id_page_token(&req.page_token),
    )
        .all_valid()?;
    Ok(ListLinks {
        contact,
        before,
        limit,
    })
}

/// RevokeReadOnlyLinks: the contact, and one link by id or all of them.
pub fn revoke_read_only_links(req: &pb::RevokeReadOnlyLinksRequest) -> Checked<RevokeLinks> {
    use pb::revoke_read_only_links_request::Which;
    let which = match req.which {
        Some(Which::LinkId(id)) => positive_id("link_id", id).map(Revoke::One),
        Some(Which::All(true)) => Ok(Revoke::All),
        Some(Which::All(false)) => Err(Violations::one(
            "all",
            "must be true to revoke every link (or name one with link_id)",
        )),
        None => Err(Violations::one(
            "which",
            "name the link to revoke (link_id), or set all",
        )),
    };
    let (contact, which) = (contact_id("contact_id", req.contact_id), which).all_valid()?;
    Ok(RevokeLinks { contact, which })
}
