//! `ContactsService` requests of CRM upkeep: update, delete, import records, the audit trail,
//! the change feed and its listing.

use client_info_proto::pb;

use super::{
    ContactFields, attributes, contact_id, expected_version, id_page_token, labels, new_contact,
    optional_version, owner, page_size, positive_id, rule,
};
use crate::app::changes::{List, Watch};
use crate::app::contacts::{AuditTrail, Delete, ImportRecord, Update};
use crate::domain::contact::{self as rules, ContactPatch};
use crate::domain::ids::{ContactId, UserId};
use crate::error::{AllValid, Checked, Violations};
use crate::wire::changes::{CardField, CardFields, FeedView};

/// The fields UpdateContact may change, as named in its update mask.
pub const UPDATABLE_FIELDS: [&str; 6] = [
    "display_name",
    "description",
    "time_zone",
    "owner_id",
    "labels",
    "attributes",
];

/// An update's patch: the mask names known fields, and each named field is valid.
pub fn patch(req: &pb::UpdateContactRequest) -> Checked<ContactPatch> {
    let mut v = Violations::new();
    let mut patch = ContactPatch::default();
    let paths = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.as_slice())
        .unwrap_or_default();
    if paths.is_empty() {
        v.add(
            "update_mask",
            format!("name at least one field: {}", UPDATABLE_FIELDS.join(", ")),
        );
    }
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "display_name" => {
                patch.display_name =
                    v.keep(rule("display_name", rules::display_name(&req.display_name)));
            }
            "description" => {
                patch.description =
                    v.keep(rule("description", rules::description(&req.description)));
            }
            "time_zone" => {
                patch.time_zone = v.keep(rule("time_zone", rules::time_zone(&req.time_zone)));
            }
            "owner_id" => {
                patch.owner = v.keep(positive_id("owner_id", req.owner_id)).map(UserId);
            }
            "labels" => patch.labels = v.keep(labels("labels", &req.labels)),
            "attributes" => patch.attributes = v.keep(attributes("attributes", &req.attributes)),
            other => v.add(
                format!("update_mask.paths[{i}]"),
                format!(
                    "unknown field {other:?} (updatable: {})",
                    UPDATABLE_FIELDS.join(", ")
                ),
            ),
        }
    }
    v.or(patch)
}

/// UpdateContact.
pub fn update_contact(req: &pb::UpdateContactRequest) -> Checked<Update> {
    let (contact, expected_version, patch) = (
        contact_id("contact_id", req.contact_id),
        expected_version("expected_version", req.expected_version),
        patch(req),
    )
        .all_valid()?;
    Ok(Update {
        contact,
        expected_version,
        patch,
    })
}

/// DeleteContact.
pub fn delete_contact(req: &pb::DeleteContactRequest) -> Checked<Delete> {
    let (contact, expected_version) = (
        contact_id("contact_id", req.contact_id),
        optional_version("expected_version", req.expected_version),
    )
        .all_valid()?;
    Ok(Delete {
        contact,
        expected_version,
    })
}

/// One record of ImportContacts.
pub fn import_contacts(record: &pb::ImportContactsRequest) -> ImportRecord {
    new_contact(&ContactFields {
        display_name: &record.display_name,
        description: &record.description,
        time_zone: &record.time_zone,
        owner_id: record.owner_id,
        labels: &record.labels,
        attributes: &record.attributes,
        communications: &record.communications,
    })
}

/// ListContactAudit.
pub fn list_contact_audit(req: &pb::ListContactAuditRequest) -> Checked<AuditTrail> {
    let (contact, limit, before) = (
        contact_id("contact_id", req.contact_id),
        page_size("page_size", req.page_size),
        id_page_token(&req.page_token),
    )
        .all_valid()?;
    Ok(AuditTrail {
        contact,
        before,
        limit,
    })
}

/// WatchContactChanges: where to resume, the card fields (names of `Contact`), the filters.
pub fn watch_contact_changes(req: &pb::WatchContactChangesRequest) -> Checked<Watch> {
    let resume_after = if req.resume_after < 0 {
        Err(Violations::one(
            "resume_after",
            "must be a position the feed sent, or 0 for from now",
        ))
    } else {
        Ok(req.resume_after)
    };
    let fields = {
        let mut v = Violations::new();
        let mut fields = CardFields::default();
        let paths = req
            .fields
            .as_ref()
            .map(|m| m.paths.as_slice())
            .unwrap_or_default();
        for (i, path) in paths.iter().enumerate() {
            match CardField::parse(path) {
                Some(f) => fields.insert(f),
                None => v.add(
                    format!("fields.paths[{i}]"),
                    format!(
                        "unknown field {path:?} (a field of Contact: {})",
                        CardField::ALL.map(CardField::name).join(", ")
                    ),
                ),
            }
        }
        v.or(fields)
    };
    let (resume_after, fields, labels, owner) = (
        resume_after,
        fields,
        labels("labels", &req.labels),
        owner(req.owner_id),
    )
        .all_valid()?;
    Ok(Watch {
        resume_after,
        view: FeedView {
            fields,
            labels,
            owner,
        },
    })
}

/// ListContacts: the page and the filters (the page token is verified by the application
/// layer against them).
pub fn list_contacts(req: &pb::ListContactsRequest) -> Checked<List> {
    let (limit, labels, owner) = (
        page_size("page_size", req.page_size),
        labels("labels", &req.labels),
        owner(req.owner_id),
    )
        .all_valid()?;
    Ok(List {
        limit,
        page_token: req.page_token.clone(),
        labels,
        owner,
    })
}

/// EraseContact and ExportContact: the contact.
pub fn erase_or_export(contact: i64) -> Checked<ContactId> {
    contact_id("contact_id", contact)
}
