//! `clientinfo.v1.ContactBindingService`: create contacts, bind interactions to them, manage
//! their communications.

use std::fmt::Write as _;

use client_info_proto::pb;
use prost::Message as _;
use tonic::{Request, Response, Status};

use diesel_async::AsyncConnection as _;

use super::{AppState, convert, events, panel};
use crate::auth::{Caller, CardLinkError, READ_ONLY_LINK_TTL};
use crate::db::communications::LinkOutcome;
use crate::db::contacts::{self, CreateRequestKey};
use crate::db::{binding, interactions, users};
use crate::domain::ids::{ContactId, UserId};
use crate::domain::interaction::Interaction;
use crate::domain::permission::Permission;
use crate::error::{Error, Fault, Reason, Violations};

/// The service.
#[derive(Debug, Clone)]
pub struct ContactBindingApi {
    state: AppState,
}

impl ContactBindingApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl ContactBindingApi {
    async fn panel(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        session: &crate::db::domains::Session,
        interaction: &Interaction,
    ) -> Result<pb::ClientInfoPanel, Error> {
        let size = usize::try_from(convert::DEFAULT_PAGE_SIZE).unwrap_or(20);
        Ok(panel::build(
            conn,
            panel::Viewer::of(session, &self.state.keys),
            interaction,
            0,
            size,
        )
        .await?
        .0)
    }
}

/// The request body without its request id, hex-encoded: equal bodies give equal strings
/// (prost encodes fields in order).
fn fingerprint(req: &pb::CreateContactRequest) -> String {
    let mut body = req.clone();
    body.request_id.clear();
    body.encode_to_vec().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[tonic::async_trait]
impl pb::contact_binding_service_server::ContactBindingService for ContactBindingApi {
    #[tracing::instrument(skip_all)]
    async fn create_contact(
        &self,
        request: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let request_id = (!req.request_id.is_empty())
            .then(|| convert::client_id(&mut v, "request_id", &req.request_id));
        let (new, drafts) = convert::new_contact(
            &mut v,
            &convert::ContactFields {
                display_name: &req.display_name,
                description: &req.description,
                time_zone: &req.time_zone,
                owner_id: req.owner_id,
                labels: &req.labels,
                attributes: &req.attributes,
                communications: &req.communications,
            },
        );
        let interaction = (!req.interaction_id.is_empty())
            .then(|| convert::client_id(&mut v, "interaction_id", &req.interaction_id))
            .flatten();
        if interaction.is_some() && req.request_id.is_empty() {
            v.add(
                "request_id",
                "is required when creating from an interaction (retries must not duplicate)",
            );
        }
        if interaction.is_none() && req.link_caller_number {
            v.add("link_caller_number", "needs an interaction_id");
        }
        if !v.is_empty() && convert::has_phones(&drafts) {
            // Phones are read in the domain's region: report them with the other faults rather
            // than after those are fixed.
            if let Ok((_, session)) = self.state.session(caller).await {
                convert::check_phones(&mut v, &drafts, session.domain.default_region);
            }
        }
        v.into_result()?;
        let new = new.ok_or_else(|| Error::Internal("validated contact missing".into()))?;
        caller.require(if interaction.is_some() {
            Permission::InteractionsHandle
        } else {
            Permission::ContactsWrite
        })?;

        let (mut conn, session) = self.state.session(caller).await?;
        let draft = convert::draft(new, drafts, caller.user_id, session.domain.default_region)?;
        let fingerprint = fingerprint(&req);
        let key = request_id.flatten();
        let key = key.as_deref().map(|request_id| CreateRequestKey {
            request_id,
            fingerprint: &fingerprint,
        });
        let keys = &self.state.keys;
        let (card, created) = match (interaction.as_deref(), key) {
            (Some(id), Some(key)) => {
                let link_caller = req.link_caller_number;
                conn.transaction(async |conn| {
                    let r = binding::create_from_interaction(
                        conn,
                        &session,
                        &draft,
                        key,
                        id,
                        link_caller,
                    )
                    .await?;
                    if let (true, Some(i)) = (r.created, &r.interaction) {
                        let mut out = events::created(&session, keys, i, &r.card)?;
                        out.extend(
                            events::moved(conn, &session, keys, Some(i), &r.relink, r.card.id)
                                .await?,
                        );
                        events::publish(conn, &session, &out).await?;
                    }
                    Ok::<_, Error>((r.card, r.created))
                })
                .await?
            }
            (_, key) => contacts::create(&mut conn, &session, &draft, key, None).await?,
        };
        tracing::info!(contact_id = %card.id, created, "contact created");
        Ok(Response::new(pb::CreateContactResponse {
            contact: Some(convert::contact(&card, false)),
            created,
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn select_contact(
        &self,
        request: Request<pb::SelectContactRequest>,
    ) -> Result<Response<pb::SelectContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::client_id(&mut v, "interaction_id", &req.interaction_id);
        let contact = convert::positive_id(&mut v, "contact_id", req.contact_id);
        v.into_result()?;
        let (Some(id), Some(contact)) = (id, contact) else {
            return Err(Error::Internal("validated select incomplete".into()).into());
        };
        caller.require(Permission::InteractionsHandle)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let keys = &self.state.keys;
        let relink_channel = req.relink_channel;
        let interaction = conn
            .transaction(async |conn| {
                let (i, relink) =
                    binding::select(conn, &session, &id, ContactId(contact), relink_channel)
                        .await?;
                let card = contacts::load_card(conn, session.domain.id, ContactId(contact)).await?;
                let mut out = vec![events::bound(
                    &session,
                    keys,
                    &i,
                    &card,
                    Some(caller.user_id),
                )?];
                out.extend(events::moved(conn, &session, keys, Some(&i), &relink, card.id).await?);
                events::publish(conn, &session, &out).await?;
                Ok::<_, Error>(i)
            })
            .await?;
        tracing::info!(contact_id = contact, "interaction bound");
        let panel = self.panel(&mut conn, &session, &interaction).await?;
        Ok(Response::new(pb::SelectContactResponse {
            panel: Some(panel),
        }))
    }

    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn unbind_contact(
        &self,
        request: Request<pb::UnbindContactRequest>,
    ) -> Result<Response<pb::UnbindContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::client_id(&mut v, "interaction_id", &req.interaction_id);
        v.into_result()?;
        let id = id.unwrap_or_default();
        caller.require(Permission::InteractionsHandle)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let interaction = conn
            .transaction(async |conn| {
                let (i, was) = binding::unbind(conn, &session, &id).await?;
                if let Some(contact) = was {
                    let out = [events::out(
                        vec![i.agent],
                        pb::agent_event::Event::ContactUnbound(pb::ContactUnbound {
                            interaction_id: i.external_id.clone(),
                            contact_id: contact.0,
                            unbound_by: Some(pb::UserRef {
                                id: caller.user_id.0,
                                name: String::new(),
                            }),
                        }),
                    )];
                    events::publish(conn, &session, &out).await?;
                }
                Ok::<_, Error>(i)
            })
            .await?;
        let panel = self.panel(&mut conn, &session, &interaction).await?;
        Ok(Response::new(pb::UnbindContactResponse {
            panel: Some(panel),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn link_communication(
        &self,
        request: Request<pb::LinkCommunicationRequest>,
    ) -> Result<Response<pb::LinkCommunicationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let expected = convert::optional_version(&mut v, "expected_version", req.expected_version);
        let draft = convert::communication(&mut v, "communication", req.communication.as_ref());
        v.into_result()?;
        let (Some(id), Some(draft)) = (id, draft) else {
            return Err(Error::Internal("validated link request incomplete".into()).into());
        };
        caller.require(Permission::ContactsWrite)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let communication = convert::resolve_communications(
            vec![("communication".to_owned(), draft)],
            session.domain.default_region,
        )?
        .pop()
        .ok_or_else(|| Error::Internal("resolved communication missing".into()))?;
        let keys = &self.state.keys;
        let relink = req.relink;
        let card = conn
            .transaction(async |conn| {
                let (card, outcome) = contacts::link_communication(
                    conn,
                    &session,
                    ContactId(id),
                    expected,
                    &communication,
                    relink,
                )
                .await?;
                if outcome != LinkOutcome::AlreadyLinked {
                    let mut out = events::updated(conn, &session, keys, &[&card]).await?;
                    if let LinkOutcome::Relinked { from, link } = outcome {
                        out.extend(
                            events::moved(conn, &session, keys, None, &Some((from, link)), card.id)
                                .await?,
                        );
                    }
                    events::publish(conn, &session, &out).await?;
                }
                Ok::<_, Error>(card)
            })
            .await?;
        Ok(Response::new(pb::LinkCommunicationResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn unlink_communication(
        &self,
        request: Request<pb::UnlinkCommunicationRequest>,
    ) -> Result<Response<pb::UnlinkCommunicationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let expected = convert::optional_version(&mut v, "expected_version", req.expected_version);
        let link = convert::link_ref(&mut v, req.communication.as_ref());
        v.into_result()?;
        let (Some(id), Some(link)) = (id, link) else {
            return Err(Error::Internal("validated unlink request incomplete".into()).into());
        };
        caller.require(Permission::ContactsWrite)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let keys = &self.state.keys;
        let card = conn
            .transaction(async |conn| {
                let card =
                    contacts::unlink_communication(conn, &session, ContactId(id), expected, link)
                        .await?;
                let out = events::updated(conn, &session, keys, &[&card]).await?;
                events::publish(conn, &session, &out).await?;
                Ok::<_, Error>(card)
            })
            .await?;
        Ok(Response::new(pb::UnlinkCommunicationResponse {
            contact: Some(convert::contact(&card, false)),
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn list_contact_interactions(
        &self,
        request: Request<pb::ListContactInteractionsRequest>,
    ) -> Result<Response<pb::ListContactInteractionsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let limit = convert::page_size(&mut v, "page_size", req.page_size);
        let before = convert::id_page_token(&mut v, &req.page_token);
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        caller.require(Permission::ContactsRead)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let domain = session.domain.id;
        if !contacts::exists(&mut conn, domain, id).await? {
            return Err(Error::contact_not_found(id).into());
        }
        let mut rows = interactions::history(&mut conn, domain, id, before, limit + 1).await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let mut user_ids: Vec<i64> = rows
            .iter()
            .flat_map(|b| [Some(b.interaction.agent), b.bound_by, b.unbound_by])
            .flatten()
            .map(|u| u.0)
            .collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let names = users::refs(&mut conn, domain, &user_ids).await?;
        let user = |u: Option<UserId>| {
            u.map(|u| {
                names
                    .get(&u.0)
                    .map(convert::user_ref)
                    .unwrap_or(pb::UserRef {
                        id: u.0,
                        name: String::new(),
                    })
            })
        };
        let next_page_token = match rows.last() {
            Some(last) if has_more => last.id.to_string(),
            _ => String::new(),
        };
        let interactions = rows
            .iter()
            .map(|b| {
                let i = &b.interaction;
                pb::ContactInteraction {
                    interaction_id: i.external_id.clone(),
                    kind: convert::kind(i.kind()) as i32,
                    direction: convert::direction(i.direction) as i32,
                    state: convert::state(i.state) as i32,
                    queue: i.queue.as_ref().map(|q| pb::Queue {
                        id: q.id.clone(),
                        name: q.name.clone(),
                    }),
                    agent: user(Some(i.agent)),
                    offered_at: Some(convert::timestamp(i.offered_at)),
                    closed_at: i.closed_at.map(convert::timestamp),
                    bound_by: user(b.bound_by),
                    bound_at: Some(convert::timestamp(b.bound_at)),
                    unbound_at: b.unbound_at.map(convert::timestamp),
                    unbound_by: user(b.unbound_by),
                }
            })
            .collect();
        Ok(Response::new(pb::ListContactInteractionsResponse {
            interactions,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(contact_id = request.get_ref().contact_id))]
    async fn create_read_only_link(
        &self,
        request: Request<pb::CreateReadOnlyLinkRequest>,
    ) -> Result<Response<pb::CreateReadOnlyLinkResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::positive_id(&mut v, "contact_id", req.contact_id);
        let interaction = (!req.interaction_id.is_empty())
            .then(|| convert::client_id(&mut v, "interaction_id", &req.interaction_id))
            .flatten();
        v.into_result()?;
        let id = ContactId(id.unwrap_or_default());
        let full = caller.has(Permission::ContactsRead);
        if !full {
            caller.require(Permission::InteractionsHandle)?;
            if interaction.is_none() {
                return Err(Error::PermissionDenied(
                    Fault::new(
                        Reason::PermissionMissing,
                        "a read-only link needs contacts.read, or interactions.handle with the interaction_id the contact was found for",
                    )
                    .with("permission", "contacts.read"),
                )
                .into());
            }
        }

        let (mut conn, session) = self.state.session(caller).await?;
        let domain = session.domain.id;
        if !contacts::exists(&mut conn, domain, id).await? {
            return Err(Error::contact_not_found(id).into());
        }
        if !full {
            let iid = interaction.as_deref().unwrap_or_default();
            let i = interactions::find(&mut conn, domain, iid, false)
                .await?
                .filter(|i| i.agent == caller.user_id)
                .ok_or_else(|| Error::interaction_not_found(iid))?;
            let related = i.bound_contact == Some(id)
                || i.identification
                    .candidates
                    .iter()
                    .any(|c| c.contact_id == id.0);
            if !related {
                return Err(Error::PermissionDenied(
                    Fault::new(
                        Reason::ContactNotInInteraction,
                        format!(
                            "contact {id} is neither bound to nor found for interaction {iid:?}"
                        ),
                    )
                    .about(format!("contact/{id}")),
                )
                .into());
            }
        }
        let (link, expires_at_unix) =
            self.state
                .keys
                .sign_card_link(domain, id.0, READ_ONLY_LINK_TTL)?;
        Ok(Response::new(pb::CreateReadOnlyLinkResponse {
            link,
            expires_at_unix,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_contact_by_link(
        &self,
        request: Request<pb::GetContactByLinkRequest>,
    ) -> Result<Response<pb::GetContactByLinkResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let link = convert::text(
            &mut v,
            "link",
            &req.link,
            crate::domain::text::TextRule::line(4096).required(),
        );
        v.into_result()?;
        let (domain, contact) = self
            .state
            .keys
            .verify_card_link(&link.unwrap_or_default())
            .map_err(|e: CardLinkError| {
                let reason = match e {
                    CardLinkError::Expired => Reason::LinkExpired,
                    CardLinkError::Invalid => Reason::LinkInvalid,
                };
                Error::PermissionDenied(Fault::new(reason, e.to_string()))
            })?;

        let (mut conn, session) = self.state.session(caller).await?;
        // A link of another domain opens nothing here.
        if domain != session.domain.id {
            return Err(Error::contact_not_found(contact).into());
        }
        let card = contacts::load_card(&mut conn, domain, ContactId(contact)).await?;
        Ok(Response::new(pb::GetContactByLinkResponse {
            contact: Some(convert::contact(&card, true)),
        }))
    }
}
