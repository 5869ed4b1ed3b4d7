//! `clientinfo.v1.ContactSearchService`: find and read contacts.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use prost::Message as _;

use super::{AppState, convert, panel};
use crate::auth::{Caller, PageTokenError, fingerprint};
use crate::db::{contacts, interactions, search};
use crate::domain::contact as rules;
use crate::domain::ids::{ContactId, UserId};
use crate::domain::interaction::InteractionState;
use crate::domain::permission::Permission;
use crate::domain::search::{
    Condition, MAX_DESTINATION_QUERY, MAX_NAME_QUERY, MIN_NAME_QUERY, SearchQuery,
    classify_destination,
};
use crate::domain::text::TextRule;
use crate::error::{Error, Fault, Reason, Violations};

/// The validated parts of a search request that do not need the domain's settings.
struct SearchDraft {
    name: Option<String>,
    destination: Option<String>,
    rest: Vec<Condition>,
    any: bool,
    labels: Vec<String>,
    owner: Option<UserId>,
    limit: i64,
    interaction: Option<String>,
}

fn search_draft(req: &pb::SearchContactsRequest, v: &mut Violations) -> SearchDraft {
    let name = convert::text(v, "name", &req.name, TextRule::line(MAX_NAME_QUERY))
        .filter(|n| !n.is_empty());
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() < MIN_NAME_QUERY)
    {
        v.add(
            "name",
            format!("must be at least {MIN_NAME_QUERY} characters"),
        );
    }
    let destination = convert::text(
        v,
        "destination",
        &req.destination,
        TextRule::line(MAX_DESTINATION_QUERY),
    )
    .filter(|d| !d.is_empty());
    let mut rest = Vec::new();
    for (i, a) in req.attributes.iter().enumerate() {
        let key = v.check(format!("attributes[{i}].key"), rules::attribute_key(&a.key));
        let value = match a.value.trim() {
            "*" => Some(None),
            "" => {
                v.add(
                    format!("attributes[{i}].value"),
                    "must not be empty (use * for any value)",
                );
                None
            }
            other => v
                .check(
                    format!("attributes[{i}].value"),
                    rules::attribute_value(other),
                )
                .map(Some),
        };
        if let (Some(key), Some(value)) = (key, value) {
            rest.push(Condition::Attribute { key, value });
        }
    }
    if req.attributes.len() > 10 {
        v.add("attributes", "at most 10 attribute conditions");
    }
    if let Some(m) = &req.messaging {
        let protocol = v.check("messaging.protocol", rules::protocol(&m.protocol));
        let external = v.check(
            "messaging.external_user_id",
            rules::external_user_id(&m.external_user_id),
        );
        if let (Some(protocol), Some(external_user_id)) = (protocol, external) {
            rest.push(Condition::Messaging {
                protocol,
                external_user_id,
            });
        }
    }
    if name.is_none()
        && destination.is_none()
        && req.attributes.is_empty()
        && req.messaging.is_none()
    {
        v.add(
            "name",
            "set at least one condition: name, destination, attributes or messaging",
        );
    }
    let any = match pb::SearchCombine::try_from(req.combine) {
        Ok(pb::SearchCombine::Unspecified | pb::SearchCombine::All) => false,
        Ok(pb::SearchCombine::Any) => true,
        Err(_) => {
            v.add(
                "combine",
                "must be SEARCH_COMBINE_ALL or SEARCH_COMBINE_ANY",
            );
            false
        }
    };
    let labels = convert::labels(v, "labels", &req.labels);
    if req.owner_id < 0 {
        v.add("owner_id", "must be a user id, or 0 for any owner");
    }
    let limit = convert::page_size(v, "page_size", req.page_size);
    let interaction = (!req.interaction_id.is_empty())
        .then(|| convert::client_id(v, "interaction_id", &req.interaction_id))
        .flatten();
    SearchDraft {
        name,
        destination,
        rest,
        any,
        labels,
        owner: (req.owner_id > 0).then_some(UserId(req.owner_id)),
        limit,
        interaction,
    }
}

fn found_by(json: &serde_json::Value) -> Vec<pb::FoundBy> {
    json.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| pb::FoundBy {
                    field: match item["f"].as_str().unwrap_or_default() {
                        "name" => pb::SearchField::Name,
                        "phone" => pb::SearchField::Phone,
                        "email" => pb::SearchField::Email,
                        "messaging" => pb::SearchField::Messaging,
                        "attribute" => pb::SearchField::Attribute,
                        _ => pb::SearchField::Unspecified,
                    } as i32,
                    exact: item["e"].as_bool().unwrap_or(false),
                    value: item["v"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The service.
#[derive(Debug, Clone)]
pub struct ContactSearchApi {
    state: AppState,
}

impl ContactSearchApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl pb::contact_search_service_server::ContactSearchService for ContactSearchApi {
    #[tracing::instrument(skip_all)]
    async fn search_contacts(
        &self,
        request: Request<pb::SearchContactsRequest>,
    ) -> Result<Response<pb::SearchContactsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let draft = search_draft(&req, &mut v);
        v.into_result()?;
        let full = caller.has(Permission::ContactsRead);
        if !full {
            caller.require(Permission::InteractionsHandle)?;
            if draft.interaction.is_none() {
                return Err(Error::PermissionDenied(
                    Fault::new(
                        Reason::PermissionMissing,
                        "searching needs contacts.read, or interactions.handle with the interaction_id of an accepted interaction",
                    )
                    .with("permission", "contacts.read"),
                )
                .into());
            }
        }

        let (mut conn, session) = self.state.session(caller).await?;
        let domain = session.domain.id;
        if !full {
            let id = draft.interaction.as_deref().unwrap_or_default();
            let interaction = interactions::find(&conn, domain, id, false)
                .await?
                .filter(|i| i.agent == caller.user_id)
                .ok_or_else(|| Error::interaction_not_found(id))?;
            if interaction.state != InteractionState::Accepted {
                return Err(Error::precondition(
                    if interaction.state == InteractionState::Closed {
                        Reason::InteractionClosed
                    } else {
                        Reason::InteractionNotAccepted
                    },
                    format!("interaction/{id}"),
                    format!(
                        "interaction {id:?} is {}; search is allowed once it is accepted",
                        interaction.state.as_str()
                    ),
                )
                .into());
            }
        }
        let mut conditions = Vec::new();
        if let Some(name) = draft.name {
            conditions.push(Condition::Name(name));
        }
        if let Some(d) = &draft.destination {
            let d = classify_destination(d, session.domain.default_region)
                .map_err(|e| Error::invalid("destination", e))?;
            conditions.push(Condition::Destination(d));
        }
        conditions.extend(draft.rest);
        let query = SearchQuery {
            conditions,
            any: draft.any,
            labels: draft.labels,
            owner: draft.owner,
        };

        let mut shape = req.clone();
        shape.page_size = 0;
        shape.page_token.clear();
        let mut bytes = shape.encode_to_vec();
        bytes.extend_from_slice(&domain.0.to_le_bytes());
        let fp = fingerprint(&bytes);
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(
                self.state
                    .keys
                    .verify_page(&req.page_token, fp)
                    .map_err(|e: PageTokenError| Error::invalid("page_token", e.to_string()))?,
            )
        };

        let mut rows =
            search::search(&mut conn, domain, &query, after.as_ref(), draft.limit + 1).await?;
        let limit = usize::try_from(draft.limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_page_token = match rows.last() {
            Some((last, _)) if has_more => self.state.keys.sign_page(fp, &last.position())?,
            _ => String::new(),
        };
        let viewer = panel::Viewer::of(&session, &self.state.keys);
        let hits = rows
            .iter()
            .filter_map(|(r, card)| {
                card.as_ref().map(|card| {
                    Ok::<_, Error>(pb::SearchHit {
                        contact: Some(viewer.view(card)?),
                        found_by: found_by(&r.found_by),
                    })
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::SearchContactsResponse {
            hits,
            next_page_token,
            has_more,
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        caller.require(Permission::ContactsRead)?;
        let (mut conn, session) = self.state.session(caller).await?;
        let card = contacts::load_card(&mut conn, session.domain.id, id).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_labels(
        &self,
        request: Request<pb::ListLabelsRequest>,
    ) -> Result<Response<pb::ListLabelsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let prefix = convert::text(
            &mut v,
            "prefix",
            &req.prefix,
            TextRule::line(rules::MAX_LABEL_LEN),
        );
        let limit = convert::page_size(&mut v, "page_size", req.page_size);
        v.into_result()?;
        if !caller.has(Permission::ContactsRead) {
            caller.require(Permission::InteractionsHandle)?;
        }
        let (mut conn, session) = self.state.session(caller).await?;
        let prefix = prefix.unwrap_or_default();
        let labels = search::labels(&mut conn, session.domain.id, &prefix, limit).await?;
        Ok(Response::new(pb::ListLabelsResponse {
            labels: labels
                .into_iter()
                .map(|(label, contact_count)| pb::LabelCount {
                    label,
                    contact_count,
                })
                .collect(),
        }))
    }
}
