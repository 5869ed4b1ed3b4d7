//! `ContactsService` requests of CRM upkeep: update, delete, import records, the audit trail.

use client_info_proto::pb;

use super::{
    ContactFields, attributes, contact_id, expected_version, id_page_token, labels, new_contact,
    optional_version, page_size, positive_id, rule,
};
use crate::app::contacts::{AuditTrail, Delete, ImportRecord, Update};
use crate::domain::contact::{self as rules, ContactPatch};
use crate::domain::ids::UserId;
use crate::error::{AllValid, Checked, Violations};

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
