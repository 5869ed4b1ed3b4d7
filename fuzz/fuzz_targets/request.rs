//! Every request message, from the raw bytes of a gRPC body through the validation its handler
//! runs (`grpc::decode`) to the typed command.
//!
//! Input: one byte that picks the RPC ([`RPCS`]), then the message's bytes.
//! Properties: nothing panics; bytes that are not the message are refused by the server's codec
//! (`client_info_proto::codec`) with INVALID_ARGUMENT, reason MALFORMED_MESSAGE, naming one field;
//! a refusal is INVALID_ARGUMENT naming each field at fault with a
//! reason (never INTERNAL or another kind); a valid command is deterministic and survives the
//! wire: the message re-encoded and decoded is the same message and validates to the same
//! command; the phones of a valid new contact, read in the domain's region as the application
//! layer reads them, parse or are refused with a reason, never a panic.
#![no_main]

use std::fmt::Debug;

use client_info_fuzz::{REGIONS, assert_malformed, assert_precise};
use client_info_proto::codec::{WireMessage, refusal};
use client_info_proto::pb;
use client_info_server::domain::contact::CommunicationDraft;
use client_info_server::domain::phone::parse_phone;
use client_info_server::error::Violations;
use client_info_server::grpc::decode;
use libfuzzer_sys::fuzz_target;

/// Decodes `bytes` as `M`, validates it with `validate` and checks the properties; hands a
/// valid command to `then`.
fn check<M, C>(
    rpc: &str,
    bytes: &[u8],
    validate: impl Fn(&M) -> Result<C, Violations>,
    then: impl FnOnce(&C),
) where
    M: WireMessage + PartialEq + Debug,
    C: Debug,
{
    // Bytes that are not the message never reach a handler: the codec refuses them.
    let msg = match M::decode(bytes) {
        Ok(msg) => msg,
        Err(e) => return assert_malformed(rpc, &refusal::<M>(&e)),
    };
    match validate(&msg) {
        Ok(command) => {
            let again = M::decode(msg.encode_to_vec().as_slice())
                .unwrap_or_else(|e| panic!("{rpc}: re-encoded {msg:?} does not decode: {e}"));
            assert_eq!(again, msg, "{rpc}: the message changed on the wire");
            let command_again = validate(&again)
                .unwrap_or_else(|v| panic!("{rpc}: {msg:?} valid once, then {v:?}"));
            assert_eq!(
                format!("{command:?}"),
                format!("{command_again:?}"),
                "{rpc}: the same message gave another command"
            );
            then(&command);
        }
        Err(v) => assert_precise(rpc, v.into()),
    }
}

fn nothing<C>(_: &C) {}

/// The phones of new contacts are parsed by the application layer in the domain's region.
fn phones<'a>(drafts: impl IntoIterator<Item = &'a CommunicationDraft>) {
    for d in drafts {
        if let CommunicationDraft::Phone(raw) = d {
            for region in &REGIONS[..4] {
                let _ = parse_phone(raw, *region).map_err(|e| assert!(!e.to_string().is_empty()));
            }
        }
    }
}

/// The RPCs, by the index an input's first byte picks (modulo their number).
const RPCS: [&str; 30] = [
    "CreateContact",
    "SelectContact",
    "UnbindContact",
    "LinkCommunication",
    "UnlinkCommunication",
    "ListContactInteractions",
    "CreateReadOnlyLink",
    "GetContactByLink",
    "ListReadOnlyLinks",
    "RevokeReadOnlyLinks",
    "GetClientInfo",
    "WatchAgentSession",
    "UpdateContact",
    "DeleteContact",
    "ImportContacts",
    "ListContactAudit",
    "WatchContactChanges",
    "ListContacts",
    "EraseContact",
    "ExportContact",
    "OfferInteraction",
    "AcceptInteraction",
    "CloseInteraction",
    "MergeContacts",
    "UnmergeContacts",
    "FindDuplicates",
    "SearchContacts",
    "GetContact",
    "ListLabels",
    "CreateContact",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let i = usize::from(pick) % RPCS.len();
    let rpc = RPCS[i];
    use decode::search as s;
    use decode::{binding as b, client_info as ci, contacts as c, interactions as it, merge as m};
    match i {
        0 | 29 => check(rpc, bytes, b::create_contact, |cmd| {
            phones(cmd.communications.iter().map(|(_, d)| d))
        }),
        1 => check(rpc, bytes, b::select_contact, nothing),
        2 => check(rpc, bytes, b::unbind_contact, nothing),
        3 => check(rpc, bytes, b::link_communication, nothing),
        4 => check(rpc, bytes, b::unlink_communication, nothing),
        5 => check(rpc, bytes, b::list_contact_interactions, nothing),
        6 => check(rpc, bytes, b::create_read_only_link, nothing),
        7 => check(rpc, bytes, b::get_contact_by_link, nothing),
        8 => check(rpc, bytes, b::list_read_only_links, nothing),
        9 => check(rpc, bytes, b::revoke_read_only_links, nothing),
        10 => check(rpc, bytes, ci::get_client_info, nothing),
        11 => check(rpc, bytes, ci::watch_agent_session, nothing),
        12 => check(rpc, bytes, c::update_contact, nothing),
        13 => check(rpc, bytes, c::delete_contact, nothing),
        14 => check(
            rpc,
            bytes,
            |r: &pb::ImportContactsRequest| c::import_contacts(r),
            |cmd| phones(cmd.1.iter().map(|(_, d)| d)),
        ),
        15 => check(rpc, bytes, c::list_contact_audit, nothing),
        16 => check(rpc, bytes, c::watch_contact_changes, nothing),
        17 => check(rpc, bytes, c::list_contacts, nothing),
        18 => check(
            rpc,
            bytes,
            |r: &pb::EraseContactRequest| c::erase_or_export(r.contact_id),
            nothing,
        ),
        19 => check(
            rpc,
            bytes,
            |r: &pb::ExportContactRequest| c::erase_or_export(r.contact_id),
            nothing,
        ),
        20 => check(
            rpc,
            bytes,
            |r: &pb::OfferInteractionRequest| {
                // Without `occurred_at` the offer is dated now: pin it, so that the command is
                // the same when validated again.
                let mut r = r.clone();
                r.occurred_at.get_or_insert(prost_types::Timestamp {
                    seconds: 0,
                    nanos: 0,
                });
                it::offer_interaction(&r)
            },
            nothing,
        ),
        21 => check(rpc, bytes, it::accept_interaction, nothing),
        22 => check(rpc, bytes, it::close_interaction, nothing),
        23 => check(rpc, bytes, m::merge_contacts, nothing),
        24 => check(rpc, bytes, m::unmerge_contacts, nothing),
        25 => check(rpc, bytes, m::find_duplicates, nothing),
        26 => check(rpc, bytes, s::search_contacts, nothing),
        27 => check(rpc, bytes, s::get_contact, nothing),
        28 => check(rpc, bytes, s::list_labels, nothing),
        _ => unreachable!("{i} < {}", RPCS.len()),
    }
});
