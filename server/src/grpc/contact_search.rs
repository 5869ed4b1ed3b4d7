//! `clientinfo.v1.ContactSearchService`: find and read contacts.

use client_info_proto::pb;
use tonic::{Request, Response, Status};

use super::{call, decode, scope};
use crate::app::{self, AppState};
use crate::domain::permission::Permission;
use crate::domain::search::{WordMatch, display_words};
use crate::error::Error;
use crate::wire::encode;
use crate::wire::panel::Viewer;

/// How a name's words matched, for the agent ("Amelia ~ amlia, 1 typo; Smith"), from the
/// `m` list of a hit's reason ([`crate::db::search::SearchRow::found_by`]): each word as
/// displayed when the displayed name splits into as many words as the normalised one.
fn explanation(display_name: &str, words: &serde_json::Value) -> String {
    let shown = display_words(display_name);
    words
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|m| {
                    let query_word = m[0].as_str()?;
                    let how = WordMatch::from_rank(m[2].as_i64()?)?;
                    let position = m[1].as_u64().unwrap_or(0) as usize;
                    let name_word = match m[3].as_u64() {
                        Some(n)
                            if n as usize == shown.len()
                                && (1..=shown.len()).contains(&position) =>
                        {
                            shown[position - 1]
                        }
                        _ => m[4].as_str()?,
                    };
                    Some(how.explain(name_word, query_word))
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// Why a hit matched, from its `found_by` JSON (`[{"f": field, "e": exact, "v": value,
/// "m": words}]`).
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
                    explanation: explanation(item["v"].as_str().unwrap_or_default(), &item["m"]),
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
        let call = call(&request)?;
        let search = decode::search::search_contacts(request.get_ref())?;
        let scope = scope(
            &call.principal,
            search.interaction.as_deref(),
            "searching needs contacts.read, or interactions.handle with the interaction_id of an accepted interaction",
        )?;
        let page = app::search::search(&self.state, &call, search, scope).await?;
        let viewer = Viewer {
            full: call.principal.has(Permission::ContactsRead),
            keys: &self.state.keys,
            domain: page.domain,
        };
        let hits = page
            .hits
            .iter()
            .map(|(r, card)| {
                Ok::<_, Error>(pb::SearchHit {
                    contact: Some(viewer.view(card)?),
                    found_by: found_by(&r.found_by),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::SearchContactsResponse {
            hits,
            next_page_token: page.next_page_token,
            has_more: page.has_more,
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let call = call(&request)?;
        let id = decode::search::get_contact(request.get_ref())?;
        call.principal.require(Permission::ContactsRead)?;
        let card = app::search::contact(&self.state, &call, id).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(encode::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_labels(
        &self,
        request: Request<pb::ListLabelsRequest>,
    ) -> Result<Response<pb::ListLabelsResponse>, Status> {
        let call = call(&request)?;
        let list = decode::search::list_labels(request.get_ref())?;
        if !call.principal.has(Permission::ContactsRead) {
            call.principal.require(Permission::InteractionsHandle)?;
        }
        let labels = app::search::labels(&self.state, &call, list).await?;
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
