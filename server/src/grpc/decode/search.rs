//! `ContactSearchService` requests: search, one contact, label autocomplete.

use client_info_proto::pb;
use prost::Message as _;

use super::{contact_id, labels, optional_client_id, owner, page_size, rule, text};
use crate::app::search::{ListLabels, Search};
use crate::domain::contact::{self as rules, MAX_LABEL_LEN};
use crate::domain::ids::ContactId;
use crate::domain::search::{Condition, MAX_DESTINATION_QUERY, MAX_NAME_QUERY, MIN_NAME_QUERY};
use crate::domain::text::TextRule;
use crate::error::{AllValid, Checked, Violations};

/// Most attribute conditions in one search.
const MAX_ATTRIBUTE_CONDITIONS: usize = 10;

/// A name query: `None` when empty, else at least [`MIN_NAME_QUERY`] characters.
fn name(input: &str) -> Checked<Option<String>> {
    let name = text("name", input, TextRule::line(MAX_NAME_QUERY))?;
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() < MIN_NAME_QUERY {
        return Err(Violations::one(
            "name",
            format!("must be at least {MIN_NAME_QUERY} characters"),
        ));
    }
    Ok(Some(name))
}

/// A destination as typed (`None` when empty; classified in the domain's region later).
fn destination(input: &str) -> Checked<Option<String>> {
    let d = text("destination", input, TextRule::line(MAX_DESTINATION_QUERY))?;
    Ok((!d.is_empty()).then_some(d))
}

/// An attribute condition: a key and a value, `*` for any value.
fn attribute(i: usize, a: &pb::AttributeCondition) -> Checked<Condition> {
    let field = format!("attributes[{i}].value");
    let value = match a.value.trim() {
        "*" => Ok(None),
        "" => Err(Violations::one(
            field,
            "must not be empty (use * for any value)",
        )),
        other => rule(&field, rules::attribute_value(other)).map(Some),
    };
    let (key, value) = (
        rule(
            &format!("attributes[{i}].key"),
            rules::attribute_key(&a.key),
        ),
        value,
    )
        .all_valid()?;
    Ok(Condition::Attribute { key, value })
}

/// The attribute and messaging conditions.
fn conditions(req: &pb::SearchContactsRequest) -> Checked<Vec<Condition>> {
    let mut v = Violations::new();
    let mut out: Vec<Condition> = req
        .attributes
        .iter()
        .enumerate()
        .filter_map(|(i, a)| v.keep(attribute(i, a)))
        .collect();
    if req.attributes.len() > MAX_ATTRIBUTE_CONDITIONS {
        v.add(
            "attributes",
            format!("at most {MAX_ATTRIBUTE_CONDITIONS} attribute conditions"),
        );
    }
    if let Some(m) = &req.messaging {
        let messaging = (
            rule("messaging.protocol", rules::protocol(&m.protocol)),
            rule(
                "messaging.external_user_id",
                rules::external_user_id(&m.external_user_id),
            ),
        )
            .all_valid();
        if let Some((protocol, external_user_id)) = v.keep(messaging) {
            out.push(Condition::Messaging {
                protocol,
                external_user_id,
            });
        }
    }
    v.or(out)
}

/// How conditions combine: `true` when any suffices.
fn any(combine: i32) -> Checked<bool> {
    match pb::SearchCombine::try_from(combine) {
        Ok(pb::SearchCombine::Unspecified | pb::SearchCombine::All) => Ok(false),
        Ok(pb::SearchCombine::Any) => Ok(true),
        Err(_) => Err(Violations::one(
            "combine",
            "must be SEARCH_COMBINE_ALL or SEARCH_COMBINE_ANY",
        )),
    }
}

/// SearchContacts: at least one condition; the page token is verified by the application
/// layer against the query without its paging.
pub fn search_contacts(req: &pb::SearchContactsRequest) -> Checked<Search> {
    let (name, destination) = (name(&req.name), destination(&req.destination));
    let no_condition = matches!(name, Ok(None) | Err(_))
        && matches!(destination, Ok(None) | Err(_))
        && req.attributes.is_empty()
        && req.messaging.is_none();
    let some_condition = if no_condition {
        Err(Violations::one(
            "name",
            "set at least one condition: name, destination, attributes or messaging",
        ))
    } else {
        Ok(())
    };
    let (name, destination, rest, (), any, labels, owner, limit, interaction) = (
        name,
        destination,
        conditions(req),
        some_condition,
        any(req.combine),
        labels("labels", &req.labels),
        owner(req.owner_id),
        page_size("page_size", req.page_size),
        optional_client_id("interaction_id", &req.interaction_id),
    )
        .all_valid()?;
    let mut shape = req.clone();
    shape.page_size = 0;
    shape.page_token.clear();
    Ok(Search {
        name,
        destination,
        rest,
        any,
        labels,
        owner,
        limit,
        interaction,
        page_token: req.page_token.clone(),
        query: shape.encode_to_vec(),
    })
}

/// GetContact.
pub fn get_contact(req: &pb::GetContactRequest) -> Checked<ContactId> {
    contact_id("contact_id", req.contact_id)
}

/// ListLabels.
pub fn list_labels(req: &pb::ListLabelsRequest) -> Checked<ListLabels> {
    let (prefix, limit) = (
        text("prefix", &req.prefix, TextRule::line(MAX_LABEL_LEN)),
        page_size("page_size", req.page_size),
    )
        .all_valid()?;
    Ok(ListLabels { prefix, limit })
}
