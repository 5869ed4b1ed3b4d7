//! Erasure in stored protobuf payloads (session events, contact changes): every string field,
//! at any depth, scrubbed of a contact's traces ([`Traces`]), then encoded again.
//!
//! Through `prost-reflect`'s dynamic messages over the server's own descriptors rather than a
//! hand-written walk per message type: the payloads nest cards, panels and candidates, and a
//! field added to any of them is covered without touching this.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage as _, Value,
};

use crate::domain::erase::Traces;
use crate::error::Error;

/// A stored payload's message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A session event (`clientinfo.v1.AgentEvent`).
    AgentEvent,
    /// A contact change (`clientinfo.v1.ContactChange`).
    ContactChange,
}

fn descriptor(kind: Payload) -> Result<MessageDescriptor, Error> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    let pool = POOL
        .get_or_init(|| DescriptorPool::decode(client_info_proto::FILE_DESCRIPTOR_SET).ok())
        .as_ref()
        .ok_or_else(|| Error::Internal("the server's descriptors do not decode".into()))?;
    let name = match kind {
        Payload::AgentEvent => "clientinfo.v1.AgentEvent",
        Payload::ContactChange => "clientinfo.v1.ContactChange",
    };
    pool.get_message_by_name(name)
        .ok_or_else(|| Error::Internal(format!("no descriptor for {name}")))
}

/// The payload without the traces (`None`: it holds none).
pub fn scrub(kind: Payload, payload: &[u8], traces: &Traces) -> Result<Option<Vec<u8>>, Error> {
    let mut message = DynamicMessage::decode(descriptor(kind)?, payload)
        .map_err(|e| Error::Internal(format!("stored payload: {e}")))?;
    Ok(scrub_message(&mut message, traces).then(|| message.encode_to_vec()))
}

fn scrub_message(message: &mut DynamicMessage, traces: &Traces) -> bool {
    let fields: Vec<_> = message.descriptor().fields().collect();
    let mut changed = false;
    for field in fields {
        if !message.has_field(&field) {
            continue;
        }
        let value = message.get_field_mut(&field);
        changed |= scrub_value(value, traces);
    }
    changed
}

fn scrub_value(value: &mut Value, traces: &Traces) -> bool {
    match value {
        Value::String(s) => match traces.scrub_text(s) {
            Some(clean) => {
                *s = clean;
                true
            }
            None => false,
        },
        Value::Message(m) => scrub_message(m, traces),
        Value::List(items) => {
            let mut changed = false;
            for v in items {
                changed |= scrub_value(v, traces);
            }
            changed
        }
        Value::Map(entries) => {
            let mut changed = false;
            for v in entries.values_mut() {
                changed |= scrub_value(v, traces);
            }
            changed
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use client_info_proto::pb;

    use super::*;

    #[test]
    fn strings_at_any_depth_are_scrubbed_and_the_rest_kept() {
        let change = pb::ContactChange {
            position: 0,
            contact_id: 7,
            kind: pb::ContactChangeKind::Updated as i32,
            contact: Some(pb::Contact {
                id: 7,
                display_name: "Zyxwv Quorra".into(),
                labels: vec!["VIP".into()],
                phones: vec![pb::Phone {
                    id: 1,
                    number: "07400 111111".into(),
                    e164: "+447400111111".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut traces = Traces::default();
        for t in ["Zyxwv Quorra", "07400 111111", "+447400111111"] {
            traces.add(t);
        }
        let clean = scrub(Payload::ContactChange, &change.encode_to_vec(), &traces)
            .expect("decodes")
            .expect("changed");
        let clean = pb::ContactChange::decode(clean.as_slice()).expect("valid");
        let card = clean.contact.expect("card");
        assert_eq!(card.display_name, crate::domain::erase::ERASED);
        assert_eq!(card.phones[0].e164, crate::domain::erase::ERASED);
        assert_eq!(card.labels, vec!["VIP".to_owned()]);
        assert_eq!((clean.contact_id, card.id), (7, 7));
        let untouched = pb::ContactChange::default().encode_to_vec();
        assert_eq!(
            scrub(Payload::ContactChange, &untouched, &traces).expect("ok"),
            None
        );
    }
}
