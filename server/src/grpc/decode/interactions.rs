//! `InteractionsService` requests: offers, answers and ends from routing.

use chrono::Utc;
use client_info_proto::pb;

use super::{client_id, datetime, identity, positive_id, rule, text};
use crate::app::interactions::{Accept, Close};
use crate::domain::contact as rules;
use crate::domain::email::parse_email;
use crate::domain::identify::{
    IdentificationKey, KeyValue, MAX_IDENTIFICATION_KEYS, MAX_KEY_SOURCE_LEN,
};
use crate::domain::ids::UserId;
use crate::domain::interaction::{
    Destination, Direction, InteractionKind, MAX_MEMBER_DESCRIPTION_LEN, MAX_QUEUE_FIELD_LEN,
    MAX_VARIABLE_KEY_LEN, MAX_VARIABLE_VALUE_LEN, MAX_VARIABLES, Member, Offer, Queue, Variable,
};
use crate::domain::text::TextRule;
use crate::error::{AllValid, Checked, Violations};

/// Longest caller number accepted on the wire (longer is a protocol error, not a bad caller id).
pub const MAX_CALLER_NUMBER_LEN: usize = 256;

/// What networks deliver instead of a withheld number.
const HIDDEN_NUMBER_WORDS: [&str; 7] = [
    "anonymous",
    "private",
    "restricted",
    "unknown",
    "unavailable",
    "withheld",
    "hidden",
];

fn kind(req: &pb::OfferInteractionRequest) -> Checked<InteractionKind> {
    match pb::InteractionKind::try_from(req.kind) {
        Ok(pb::InteractionKind::Call) => Ok(InteractionKind::Call),
        Ok(pb::InteractionKind::Chat) => Ok(InteractionKind::Chat),
        _ => Err(Violations::one(
            "kind",
            "must be INTERACTION_KIND_CALL or INTERACTION_KIND_CHAT",
        )),
    }
}

fn direction(req: &pb::OfferInteractionRequest) -> Checked<Direction> {
    match pb::InteractionDirection::try_from(req.direction) {
        Ok(pb::InteractionDirection::Inbound) => Ok(Direction::Inbound),
        Ok(pb::InteractionDirection::Outbound) => Ok(Direction::Outbound),
        _ => Err(Violations::one(
            "direction",
            "must be INTERACTION_DIRECTION_INBOUND or INTERACTION_DIRECTION_OUTBOUND",
        )),
    }
}

/// The client of an offer; `kind` (when valid) must agree with it.
fn destination(
    req: &pb::OfferInteractionRequest,
    kind: Option<InteractionKind>,
) -> Checked<Destination> {
    use pb::client_destination::Destination as D;
    const MISMATCH: &str = "calls take destination.call, chats destination.chat";
    match req
        .destination
        .as_ref()
        .and_then(|d| d.destination.as_ref())
    {
        None => Err(Violations::one(
            "destination",
            "set call (calls) or chat (chats)",
        )),
        Some(D::Call(c)) => {
            let agrees = if kind == Some(InteractionKind::Chat) {
                Err(Violations::one("destination", MISMATCH))
            } else {
                Ok(())
            };
            let (raw, ()) = (
                text(
                    "destination.call.number",
                    &c.number,
                    TextRule::line(MAX_CALLER_NUMBER_LEN),
                ),
                agrees,
            )
                .all_valid()?;
            let hidden = c.hidden
                || raw.is_empty()
                || HIDDEN_NUMBER_WORDS
                    .iter()
                    .any(|w| raw.eq_ignore_ascii_case(w));
            Ok(Destination::Call {
                number: (!hidden).then_some(raw),
            })
        }
        Some(D::Chat(c)) => {
            let agrees = if kind == Some(InteractionKind::Call) {
                Err(Violations::one("destination", MISMATCH))
            } else {
                Ok(())
            };
            let ((), identity) = (
                agrees,
                identity(
                    "destination.chat",
                    &c.protocol,
                    &c.external_user_id,
                    &c.display_name,
                ),
            )
                .all_valid()?;
            Ok(Destination::Chat(identity))
        }
    }
}

fn queue(q: Option<&pb::Queue>) -> Checked<Option<Queue>> {
    let Some(q) = q else { return Ok(None) };
    let (id, name) = (
        text(
            "queue.id",
            &q.id,
            TextRule::line(MAX_QUEUE_FIELD_LEN).required(),
        ),
        text("queue.name", &q.name, TextRule::line(MAX_QUEUE_FIELD_LEN)),
    )
        .all_valid()?;
    Ok(Some(Queue { id, name }))
}

fn member(m: Option<&pb::QueueMember>) -> Checked<Option<Member>> {
    let Some(m) = m else { return Ok(None) };
    let (id, description) = (
        text(
            "member.id",
            &m.id,
            TextRule::line(MAX_QUEUE_FIELD_LEN).required(),
        ),
        text(
            "member.description",
            &m.description,
            TextRule::paragraph(MAX_MEMBER_DESCRIPTION_LEN),
        ),
    )
        .all_valid()?;
    Ok(Some(Member { id, description }))
}

fn variables(input: &[pb::Variable]) -> Checked<Vec<Variable>> {
    let mut v = Violations::new();
    if input.len() > MAX_VARIABLES {
        v.add("variables", format!("at most {MAX_VARIABLES} variables"));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, var) in input.iter().enumerate() {
        let parts = (
            text(
                &format!("variables[{i}].key"),
                &var.key,
                TextRule::line(MAX_VARIABLE_KEY_LEN).required(),
            ),
            text(
                &format!("variables[{i}].value"),
                &var.value,
                TextRule::paragraph(MAX_VARIABLE_VALUE_LEN),
            ),
        )
            .all_valid();
        if let Some((key, value)) = v.keep(parts) {
            out.push(Variable { key, value });
        }
    }
    v.or(out)
}

/// One identification key of an offer, under `field`.
fn identification_key(field: &str, k: &pb::IdentificationKey) -> Checked<IdentificationKey> {
    use pb::identification_key::Key;
    let value = match &k.key {
        None => Err(Violations::one(
            format!("{field}.key"),
            "set one of attribute, email, contact_id",
        )),
        Some(Key::Attribute(a)) => (
            rule(
                &format!("{field}.attribute.key"),
                rules::attribute_key(&a.key),
            ),
            rule(
                &format!("{field}.attribute.value"),
                rules::attribute_value(&a.value),
            ),
        )
            .all_valid()
            .map(|(key, value)| KeyValue::Attribute { key, value }),
        Some(Key::Email(e)) => rule(&format!("{field}.email"), parse_email(e)).map(KeyValue::Email),
        Some(Key::ContactId(id)) => {
            positive_id(&format!("{field}.contact_id"), *id).map(KeyValue::Contact)
        }
    };
    let source = text(
        &format!("{field}.source"),
        &k.source,
        TextRule::line(MAX_KEY_SOURCE_LEN),
    );
    let (value, source) = (value, source).all_valid()?;
    Ok(IdentificationKey {
        value,
        source: (!source.is_empty()).then_some(source),
    })
}

/// The identification keys of an offer, in order.
fn identification_keys(input: &[pb::IdentificationKey]) -> Checked<Vec<IdentificationKey>> {
    let mut v = Violations::new();
    if input.len() > MAX_IDENTIFICATION_KEYS {
        v.add(
            "identification_keys",
            format!("at most {MAX_IDENTIFICATION_KEYS} keys"),
        );
    }
    let keys = input
        .iter()
        .enumerate()
        .filter_map(|(i, k)| v.keep(identification_key(&format!("identification_keys[{i}]"), k)))
        .collect();
    v.or(keys)
}

/// OfferInteraction.
pub fn offer_interaction(req: &pb::OfferInteractionRequest) -> Checked<Offer> {
    let kind = kind(req);
    let destination = destination(req, kind.as_ref().ok().copied());
    let occurred_at = match &req.occurred_at {
        Some(t) => datetime("occurred_at", t),
        None => Ok(Utc::now()),
    };
    let (
        external_id,
        _,
        direction,
        destination,
        agent,
        queue,
        member,
        variables,
        occurred_at,
        keys,
    ) = (
        client_id("interaction_id", &req.interaction_id),
        kind,
        direction(req),
        destination,
        positive_id("agent_user_id", req.agent_user_id),
        queue(req.queue.as_ref()),
        member(req.member.as_ref()),
        variables(&req.variables),
        occurred_at,
        identification_keys(&req.identification_keys),
    )
        .all_valid()?;
    Ok(Offer {
        external_id,
        direction,
        destination,
        agent: UserId(agent),
        queue,
        member,
        variables,
        occurred_at,
        keys,
    })
}

/// AcceptInteraction.
pub fn accept_interaction(req: &pb::AcceptInteractionRequest) -> Checked<Accept> {
    let (interaction, agent) = (
        client_id("interaction_id", &req.interaction_id),
        positive_id("agent_user_id", req.agent_user_id),
    )
        .all_valid()?;
    Ok(Accept {
        interaction,
        agent: UserId(agent),
    })
}

/// CloseInteraction.
pub fn close_interaction(req: &pb::CloseInteractionRequest) -> Checked<Close> {
    Ok(Close {
        interaction: client_id("interaction_id", &req.interaction_id)?,
    })
}
