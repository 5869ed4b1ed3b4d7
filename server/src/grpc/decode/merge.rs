//! `ContactsService` requests about duplicates: find them, merge them, undo a merge.

use client_info_proto::pb;
use prost::Message as _;

use super::{
    MAX_PAGE_TOKEN_LEN, contact_id, expected_version, labels, page_size, positive_id, rule, text,
};
use crate::app::merge::{FindDuplicates, Merge, Unmerge};
use crate::domain::contact as rules;
use crate::domain::ids::{ContactId, UserId};
use crate::domain::merge::{FieldSources, MAX_MERGE_CONTACTS, Member as MergeMember};
use crate::domain::text::TextRule;
use crate::error::{AllValid, Checked, Violations};

/// A contact of a merge under `field` (`survivor`, `merged[1]`).
fn merge_member(field: &str, input: &pb::ContactVersion) -> Checked<MergeMember> {
    let (contact, expected_version) = (
        contact_id(&format!("{field}.contact_id"), input.contact_id),
        expected_version(&format!("{field}.expected_version"), input.expected_version),
    )
        .all_valid()?;
    Ok(MergeMember {
        contact,
        expected_version,
        field: format!("{field}.contact_id"),
    })
}

/// The contacts of a merge: a survivor and 1 to 9 others, none twice.
fn members(req: &pb::MergeContactsRequest) -> Checked<(MergeMember, Vec<MergeMember>)> {
    let survivor = match &req.survivor {
        Some(s) => merge_member("survivor", s),
        None => Err(Violations::one(
            "survivor",
            "name the contact that survives, with its expected_version",
        )),
    };
    let mut v = Violations::new();
    if req.merged.is_empty() {
        v.add(
            "merged",
            "name at least one contact to merge into the survivor",
        );
    }
    if req.merged.len() >= MAX_MERGE_CONTACTS {
        v.add(
            "merged",
            format!(
                "at most {} contacts besides the survivor ({MAX_MERGE_CONTACTS} in all)",
                MAX_MERGE_CONTACTS - 1
            ),
        );
    }
    let mut merged: Vec<MergeMember> = Vec::with_capacity(req.merged.len());
    for (i, m) in req.merged.iter().enumerate() {
        let field = format!("merged[{i}]");
        let Some(m) = v.keep(merge_member(&field, m)) else {
            continue;
        };
        if req
            .survivor
            .as_ref()
            .is_some_and(|s| s.contact_id == m.contact.0)
        {
            v.add(
                &m.field,
                format!(
                    "contact {} is the survivor: a contact cannot be merged with itself",
                    m.contact
                ),
            );
        } else if merged.iter().any(|o| o.contact == m.contact) {
            v.add(&m.field, format!("contact {} is named twice", m.contact));
        } else {
            merged.push(m);
        }
    }
    let (survivor, merged) = (survivor, v.or(merged)).all_valid()?;
    Ok((survivor, merged))
}

/// A field source: 0 for the survivor's own value, else a contact of the merge.
fn source(field: &str, id: i64, ids: &[i64]) -> Checked<Option<ContactId>> {
    match id {
        0 => Ok(None),
        id if ids.contains(&id) => Ok(Some(ContactId(id))),
        id if id < 0 => Err(Violations::one(
            field,
            "must be a contact of the merge, or 0",
        )),
        id => Err(Violations::one(
            field,
            format!("contact {id} is not in the merge (name the survivor or a merged contact)"),
        )),
    }
}

/// Whose value the survivor keeps.
fn sources(req: &pb::MergeContactsRequest) -> Checked<FieldSources> {
    let ids: Vec<i64> = req
        .survivor
        .iter()
        .chain(&req.merged)
        .map(|m| m.contact_id)
        .collect();
    let f = req.field_sources.clone().unwrap_or_default();
    let mut v = Violations::new();
    let mut attributes: Vec<(String, ContactId)> = Vec::new();
    if f.attributes.len() > rules::MAX_ATTRIBUTES {
        v.add(
            "field_sources.attributes",
            format!("at most {} attributes", rules::MAX_ATTRIBUTES),
        );
    }
    for (i, a) in f.attributes.iter().enumerate() {
        let field = format!("field_sources.attributes[{i}]");
        let parts = (
            rule(&format!("{field}.key"), rules::attribute_key(&a.key)),
            source(&format!("{field}.contact_id"), a.contact_id, &ids).and_then(|c| {
                c.ok_or_else(|| {
                    Violations::one(format!("{field}.contact_id"), "name a contact of the merge")
                })
            }),
        )
            .all_valid();
        if let Some((key, contact)) = v.keep(parts) {
            if attributes.iter().any(|(k, _)| *k == key) {
                v.add(format!("{field}.key"), format!("duplicate key {key:?}"));
            } else {
                attributes.push((key, contact));
            }
        }
    }
    let (display_name, description, time_zone, owner, attributes) = (
        source("field_sources.display_name_from", f.display_name_from, &ids),
        source("field_sources.description_from", f.description_from, &ids),
        source("field_sources.time_zone_from", f.time_zone_from, &ids),
        source("field_sources.owner_from", f.owner_from, &ids),
        v.or(attributes),
    )
        .all_valid()?;
    Ok(FieldSources {
        display_name,
        description,
        time_zone,
        owner,
        attributes,
    })
}

/// MergeContacts.
pub fn merge_contacts(req: &pb::MergeContactsRequest) -> Checked<Merge> {
    let ((survivor, merged), sources) = (members(req), sources(req)).all_valid()?;
    Ok(Merge {
        survivor,
        merged,
        sources,
    })
}

/// UnmergeContacts.
pub fn unmerge_contacts(req: &pb::UnmergeContactsRequest) -> Checked<Unmerge> {
    Ok(Unmerge {
        merge_id: positive_id("merge_id", req.merge_id)?,
        force: req.force,
    })
}

/// FindDuplicates: the filters, the page size, the page token (verified by the application
/// layer, which holds the keys) and the query without its paging, which the token belongs to.
pub fn find_duplicates(req: &pb::FindDuplicatesRequest) -> Checked<FindDuplicates> {
    let owner = match req.owner_id {
        0 => Ok(None),
        id if id > 0 => Ok(Some(UserId(id))),
        _ => Err(Violations::one(
            "owner_id",
            "must be a user id, or 0 for any owner",
        )),
    };
    let token = text(
        "page_token",
        &req.page_token,
        TextRule::line(MAX_PAGE_TOKEN_LEN),
    );
    let (labels, owner, limit, page_token) = (
        labels("labels", &req.labels),
        owner,
        page_size("page_size", req.page_size),
        token,
    )
        .all_valid()?;
    let mut shape = req.clone();
    shape.page_size = 0;
    shape.page_token.clear();
    Ok(FindDuplicates {
        labels,
        owner,
        limit,
        page_token,
        query: shape.encode_to_vec(),
    })
}
