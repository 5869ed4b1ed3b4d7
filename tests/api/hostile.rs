//! Hostile text in every string field of every RPC, generated from the protos' descriptors:
//! each field of a valid request in turn gets a NUL, an escape character and a tab, and the
//! answer must name that field (INVALID_ARGUMENT) or accept it where the field is free text,
//! never INTERNAL or UNKNOWN. A new RPC or field is covered without being listed here; a new
//! RPC with string fields only needs a valid base request below (the test says so).
//!
//! Bytes that are not a request message at all (every RPC of the API, the health and reflection
//! services, a malformed record inside an import) are MALFORMED_MESSAGE, never INTERNAL.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::interactions::{call, chat};
use client_info_sdk::pb;
use client_info_tests::{ALL, TestApp};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt as _;

/// Free-text fields (tabs and line breaks kept), by request message and path. Every other
/// string field is a single line.
const PARAGRAPHS: &[&str] = &[
    "clientinfo.v1.CreateContactRequest.description",
    "clientinfo.v1.CreateContactRequest.attributes[0].value",
    "clientinfo.v1.UpdateContactRequest.description",
    "clientinfo.v1.UpdateContactRequest.attributes[0].value",
    "clientinfo.v1.ImportContactsRequest.description",
    "clientinfo.v1.ImportContactsRequest.attributes[0].value",
    "clientinfo.v1.OfferInteractionRequest.member.description",
    "clientinfo.v1.OfferInteractionRequest.variables[0].value",
    "clientinfo.v1.OfferInteractionRequest.identification_keys[0].attribute.value",
    "clientinfo.v1.SearchContactsRequest.attributes[0].value",
];

/// Passes encoded messages through unchanged.
#[derive(Default, Clone)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// One step of a field path.
#[derive(Clone)]
enum Step {
    Field(FieldDescriptor),
    First,
}

/// Every string field reachable from `message` (repeated ones at index 0), as paths.
fn string_paths(message: &MessageDescriptor, prefix: Vec<Step>, depth: usize) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    if depth > 4 {
        return out;
    }
    for field in message.fields() {
        let mut path = prefix.clone();
        path.push(Step::Field(field.clone()));
        if field.is_list() {
            path.push(Step::First);
        }
        match field.kind() {
            Kind::String => out.push(path),
            Kind::Message(m) if !field.is_map() => {
                out.extend(string_paths(&m, path, depth + 1));
            }
            _ => {}
        }
    }
    out
}

/// The path as the server names fields: `communications[0].phone.number`.
fn path_name(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(f.name());
            }
            Step::First => s.push_str("[0]"),
        }
    }
    s
}

/// Sets the string at `path` in `message` to `text`, creating what is missing on the way.
fn inject(message: &mut DynamicMessage, path: &[Step], text: &str) {
    let Some(Step::Field(field)) = path.first() else {
        return;
    };
    let rest = &path[1..];
    let value = if field.is_list() {
        let mut list = match message.get_field(field).into_owned() {
            Value::List(l) => l,
            _ => Vec::new(),
        };
        let element = match field.kind() {
            Kind::String => Value::String(text.to_owned()),
            Kind::Message(m) => {
                let mut inner = match list.first() {
                    Some(Value::Message(existing)) => existing.clone(),
                    _ => DynamicMessage::new(m),
                };
                inject(&mut inner, &rest[1..], text);
                Value::Message(inner)
            }
            _ => return,
        };
        if list.is_empty() {
            list.push(element);
        } else {
            list[0] = element;
        }
        Value::List(list)
    } else {
        match field.kind() {
            Kind::String => Value::String(text.to_owned()),
            Kind::Message(m) => {
                let mut inner = if message.has_field(field) {
                    match message.get_field(field).into_owned() {
                        Value::Message(existing) => existing,
                        _ => DynamicMessage::new(m),
                    }
                } else {
                    DynamicMessage::new(m)
                };
                inject(&mut inner, rest, text);
                Value::Message(inner)
            }
            _ => return,
        }
    };
    message.set_field(field, value);
}

/// The valid base request of each RPC that has string fields (proto JSON; `$ME`, `$C`,
/// `$LINK` stand for the caller, a contact and a read-only link to it; `$N` for a number new at
/// each request, so that what one case creates never collides with the next).
fn bases() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (
            "/clientinfo.v1.InteractionsService/OfferInteraction",
            r#"{"interaction_id": "call-new-$N", "kind": "INTERACTION_KIND_CALL",
                "direction": "INTERACTION_DIRECTION_INBOUND",
                "destination": {"call": {"number": "+447400123456"}}, "agent_user_id": $ME,
                "queue": {"id": "q1", "name": "Support"},
                "member": {"id": "m1", "description": "Tier 2"},
                "variables": [{"key": "lang", "value": "en"}],
                "identification_keys": [
                    {"attribute": {"key": "account_no", "value": "12345"}, "source": "IVR"},
                    {"email": "ann@example.com"}]}"#,
        ),
        (
            "/clientinfo.v1.InteractionsService/AcceptInteraction",
            r#"{"interaction_id": "call-base", "agent_user_id": $ME}"#,
        ),
        (
            "/clientinfo.v1.InteractionsService/CloseInteraction",
            r#"{"interaction_id": "call-base"}"#,
        ),
        (
            "/clientinfo.v1.ClientInfoService/GetClientInfo",
            r#"{"interaction_id": "call-base"}"#,
        ),
        (
            "/clientinfo.v1.ContactSearchService/SearchContacts",
            r#"{"interaction_id": "call-base", "name": "ann", "destination": "+447400123456",
                "attributes": [{"key": "tier", "value": "gold"}],
                "messaging": {"protocol": "telegram", "external_user_id": "42"},
                "combine": "SEARCH_COMBINE_ANY", "labels": ["VIP"]}"#,
        ),
        (
            "/clientinfo.v1.ContactSearchService/ListLabels",
            r#"{"prefix": "v"}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/CreateContact",
            r#"{"request_id": "req-$N", "interaction_id": "call-base", "display_name": "Bea",
                "time_zone": "Europe/London", "labels": ["New"], "description": "Met at the fair",
                "attributes": [{"key": "crm_id", "value": "CRM-7"}],
                "communications": [{"phone": {"number": "+447400999888"}}]}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/SelectContact",
            r#"{"interaction_id": "call-base", "contact_id": $C}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/UnbindContact",
            r#"{"interaction_id": "call-base"}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/LinkCommunication",
            r#"{"contact_id": $C, "communication": {"email": {"address": "ann@example.org"}}}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/ListContactInteractions",
            r#"{"contact_id": $C}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/ListReadOnlyLinks",
            r#"{"contact_id": $C}"#,
        ),
        (
            "/clientinfo.v1.ContactsService/WatchContactChanges",
            r#"{"resume_after": 0, "fields": "displayName", "labels": ["VIP"]}"#,
        ),
        (
            "/clientinfo.v1.ContactsService/ListContacts",
            r#"{"page_size": 2, "labels": ["VIP"]}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/CreateReadOnlyLink",
            r#"{"contact_id": $C, "interaction_id": "call-base"}"#,
        ),
        (
            "/clientinfo.v1.ContactBindingService/GetContactByLink",
            r#"{"link": "$LINK"}"#,
        ),
        (
            "/clientinfo.v1.ContactsService/UpdateContact",
            r#"{"contact_id": $C, "expected_version": 1,
                "update_mask": "displayName,description,timeZone,labels,attributes",
                "display_name": "Ann Lee", "description": "Call after 18:00",
                "time_zone": "Europe/Paris", "labels": ["VIP"],
                "attributes": [{"key": "tier", "value": "gold"}]}"#,
        ),
        (
            "/clientinfo.v1.ContactsService/ImportContacts",
            r#"{"display_name": "Cy", "description": "Imported", "time_zone": "Europe/Berlin",
                "labels": ["Imported"], "attributes": [{"key": "crm_id", "value": "CRM-9"}],
                "communications": [{"messaging_channel":
                    {"protocol": "whatsapp", "external_user_id": "+4915199$N", "display_name": "Cy"}}]}"#,
        ),
        (
            "/clientinfo.v1.ContactsService/ListContactAudit",
            r#"{"contact_id": $C}"#,
        ),
        (
            "/clientinfo.v1.ContactsService/FindDuplicates",
            r#"{"labels": ["VIP"]}"#,
        ),
        (
            "/clientinfo.v1.ContactsService/MergeContacts",
            r#"{"survivor": {"contact_id": $C, "expected_version": 1},
                "merged": [{"contact_id": 999999, "expected_version": 1}],
                "field_sources": {"attributes": [{"key": "tier", "contact_id": $C}]}}"#,
        ),
    ])
}

/// Calls `path` with raw message bytes as `token`: `bodies[0]` as a unary request, or every
/// body as the messages of a client stream.
async fn call_raw(
    channel: &tonic::transport::Channel,
    token: &str,
    path: &str,
    client_streaming: bool,
    bodies: Vec<Vec<u8>>,
) -> Result<tonic::Response<Vec<u8>>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let path: http::uri::PathAndQuery = path.parse().expect("path");
    let auth: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("header");
    if client_streaming {
        let mut request = tonic::Request::new(tokio_stream::iter(bodies));
        request.metadata_mut().insert("authorization", auth);
        request.set_timeout(Duration::from_secs(10));
        grpc.client_streaming(request, path, RawCodec).await
    } else {
        let body = bodies.into_iter().next().unwrap_or_default();
        let mut request = tonic::Request::new(body);
        request.metadata_mut().insert("authorization", auth);
        request.set_timeout(Duration::from_secs(10));
        grpc.unary(request, path, RawCodec).await
    }
}

/// Fails with every failed case when there are any, or when fewer than `min` cases ran.
fn assert_no_failures(checked: usize, min: usize, failures: &[String]) {
    assert!(checked > min, "only {checked} cases ran");
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What the server answered: the code and the fields its BadRequest (or, for an import, its
/// per-record errors) names.
async fn send(
    channel: &tonic::transport::Channel,
    token: &str,
    path: &str,
    client_streaming: bool,
    body: Vec<u8>,
) -> (Code, Vec<String>) {
    let result = call_raw(channel, token, path, client_streaming, vec![body]).await;
    match result {
        Ok(response) if client_streaming => {
            let summary = pb::ImportContactsResponse::decode(response.into_inner().as_slice())
                .expect("import summary");
            let fields = summary.errors.into_iter().map(|e| e.field).collect();
            (Code::Ok, fields)
        }
        Ok(_) => (Code::Ok, Vec::new()),
        Err(status) => {
            let fields = status
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                .unwrap_or_default();
            (status.code(), fields)
        }
    }
}

#[tokio::test]
async fn control_characters_in_every_string_field_are_named_never_internal() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let me = app.actor(d, "Alice", ALL).await;
    let (ann, _) = me
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann".into(),
            labels: vec!["VIP".into()],
            communications: vec![
                phone("+447400123456"),
                email("ann@example.com"),
                messaging("telegram", "42", "Ann"),
            ],
            ..Default::default()
        })
        .await
        .expect("create");
    for (id, offer) in [
        ("call-base", call("call-base", "+447400123456", me.user.0)),
        (
            "chat-base",
            chat("chat-base", "telegram", "42", "Ann", me.user.0),
        ),
    ] {
        me.client.offer_interaction(offer).await.expect("offer");
        me.client
            .accept_interaction(id, me.user.0)
            .await
            .expect("accept");
    }
    let (link, _) = app
        .keys
        .sign_card_link(d, ann.id, Duration::from_secs(600), None)
        .expect("link");

    let pool = DescriptorPool::decode(client_info_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let channel = app.channel().await;
    let bases = bases();
    let mut failures = Vec::new();
    let mut checked = 0;
    for service in pool
        .services()
        .filter(|s| s.package_name() == "clientinfo.v1")
    {
        for method in service.methods() {
            let input = method.input();
            let paths = string_paths(&input, Vec::new(), 0);
            if paths.is_empty() {
                continue;
            }
            let rpc = format!("/{}/{}", service.full_name(), method.name());
            let Some(base) = bases.get(rpc.as_str()) else {
                failures.push(format!("{rpc}: add a valid base request to hostile.rs"));
                continue;
            };
            let template = base
                .replace("$ME", &me.user.0.to_string())
                .replace("$C", &ann.id.to_string())
                .replace("$LINK", &link);
            for path in &paths {
                let name = path_name(path);
                let paragraph =
                    PARAGRAPHS.contains(&format!("{}.{name}", input.full_name()).as_str());
                for (what, text, must_refuse) in [
                    ("NUL", "a\u{0}b", true),
                    ("ESC", "a\u{1b}[31mb", true),
                    ("TAB", "a\tb", !paragraph),
                ] {
                    checked += 1;
                    let json = template.replace("$N", &checked.to_string());
                    let mut de = serde_json::Deserializer::from_str(&json);
                    let mut message = DynamicMessage::deserialize(input.clone(), &mut de)
                        .unwrap_or_else(|e| panic!("{rpc}: base request: {e}"));
                    inject(&mut message, path, text);
                    let (code, fields) = send(
                        &channel,
                        &me.token,
                        &rpc,
                        method.is_client_streaming(),
                        message.encode_to_vec(),
                    )
                    .await;
                    let named = fields.iter().any(|f| f == &name);
                    let ok = if must_refuse {
                        named && (code == Code::InvalidArgument || method.is_client_streaming())
                    } else {
                        !named && !matches!(code, Code::Internal | Code::Unknown)
                    };
                    if !ok {
                        failures.push(format!(
                            "{rpc} {name} with {what}: {code:?}, fields {fields:?}"
                        ));
                    }
                }
            }
        }
    }
    assert_no_failures(checked, 150, &failures);
}

/// Bytes that are not the request's message (not protobuf at all, a wrong wire type, a string
/// that is not UTF-8, a message cut short) are refused by the server's codec before any handler:
/// INVALID_ARGUMENT, reason MALFORMED_MESSAGE with the expected `message_type`, and a BadRequest
/// violation naming the field being read. tonic's own codec answered INTERNAL.
#[tokio::test]
async fn bytes_that_are_not_the_request_message_are_malformed_never_internal() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let me = app.actor(d, "Alice", ALL).await;
    let pool = DescriptorPool::decode(client_info_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let channel = app.channel().await;
    let bases = bases();
    const MARK: &str = "NOT-UTF-8-HERE";
    let mut failures = Vec::new();
    let mut checked = 0;
    for service in pool
        .services()
        .filter(|s| s.package_name() == "clientinfo.v1")
    {
        for method in service.methods() {
            let rpc = format!("/{}/{}", service.full_name(), method.name());
            let input = method.input();
            // (what, bytes, the field the refusal must name: exactly, or only its first part)
            let mut cases: Vec<(&str, Vec<u8>, String)> = vec![
                (
                    "a varint that never ends",
                    vec![0xff; 11],
                    "(message)".into(),
                ),
                ("wire type 7", vec![0x0f, 0x00], "(message)".into()),
                ("field number 0", vec![0x02, 0x00], "(message)".into()),
            ];
            if let (Some(base), Some(path)) = (
                bases.get(rpc.as_str()),
                string_paths(&input, Vec::new(), 0).first(),
            ) {
                let json = base
                    .replace("$ME", &me.user.0.to_string())
                    .replace("$C", "1")
                    .replace("$LINK", "link")
                    .replace("$N", "1");
                let mut de = serde_json::Deserializer::from_str(&json);
                let mut message = DynamicMessage::deserialize(input.clone(), &mut de)
                    .unwrap_or_else(|e| panic!("{rpc}: base request: {e}"));
                inject(&mut message, path, MARK);
                let mut bytes = message.encode_to_vec();
                let at = bytes
                    .windows(MARK.len())
                    .position(|w| w == MARK.as_bytes())
                    .expect("marker encoded");
                bytes[at..at + MARK.len()].fill(0xff);
                let field = path_name(path).replace("[0]", "");
                cases.push(("a string that is not UTF-8", bytes, field));
                // The same message cut off inside its last field.
                let whole = message.encode_to_vec();
                cases.push((
                    "a message cut short",
                    whole[..whole.len() - 1].to_vec(),
                    String::new(),
                ));
            }
            for (what, body, field) in cases {
                checked += 1;
                let result = call_raw(
                    &channel,
                    &me.token,
                    &rpc,
                    method.is_client_streaming(),
                    vec![body],
                )
                .await;
                let Err(status) = result else {
                    failures.push(format!("{rpc} with {what}: accepted"));
                    continue;
                };
                let details = status.get_error_details();
                let info = details.error_info();
                let named: Vec<String> = details
                    .bad_request()
                    .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
                    .unwrap_or_default();
                let first = |f: &str| f.split('.').next().unwrap_or_default().to_owned();
                let field_ok = match field.as_str() {
                    "" => named.len() == 1 && !named[0].is_empty(),
                    "(message)" => named == ["(message)"],
                    f => named.len() == 1 && first(&named[0]) == first(f),
                };
                let ok = status.code() == Code::InvalidArgument
                    && info.is_some_and(|i| {
                        i.reason == "MALFORMED_MESSAGE"
                            && i.domain == "client-info"
                            && i.metadata.get("message_type").map(String::as_str)
                                == Some(input.full_name())
                    })
                    && field_ok;
                if !ok {
                    failures.push(format!(
                        "{rpc} with {what}: {:?} {:?}, reason {:?}, fields {named:?} (want {field:?})",
                        status.code(),
                        status.message(),
                        info.map(|i| i.reason.clone()),
                    ));
                }
            }
        }
    }
    assert_no_failures(checked, 100, &failures);
}

/// An import stream with a malformed record: the records before it are written (as if the
/// stream had ended there), none after it, and the refusal says where it stopped.
#[tokio::test]
async fn an_import_stops_at_a_malformed_record_and_says_where() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let me = app.actor(d, "Alice", ALL).await;
    let record = |name: &str| {
        pb::ImportContactsRequest {
            display_name: name.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let bad = pb::ImportContactsRequest::default(); // an empty name: rejected, not malformed
    let records = vec![
        record("Ann"),
        bad.encode_to_vec(),
        record("Bea"),
        vec![0xff; 11],
        record("Cy"),
    ];
    let channel = app.channel().await;
    let path = "/clientinfo.v1.ContactsService/ImportContacts";
    let status = call_raw(&channel, &me.token, path, true, records)
        .await
        .expect_err("malformed record");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    assert_eq!(info.reason, "MALFORMED_MESSAGE");
    let meta = |k: &str| info.metadata.get(k).map(String::as_str);
    assert_eq!(meta("record_index"), Some("3"));
    assert_eq!(meta("imported"), Some("2"));
    assert_eq!(meta("rejected"), Some("1"));
    assert!(
        status.message().starts_with("record 3: "),
        "{}",
        status.message()
    );
    let listed = me
        .client
        .list_contacts(&Default::default(), 100, "")
        .await
        .expect("list");
    let mut names: Vec<&str> = listed
        .contacts
        .iter()
        .filter_map(|c| c.contact.as_ref())
        .map(|c| c.display_name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Ann", "Bea"]);
}

/// The health and reflection services (generated by tonic-health and tonic-reflection with
/// tonic's own codec, which answers INTERNAL) refuse bytes that are not their request the same
/// way as the API: INVALID_ARGUMENT, MALFORMED_MESSAGE, the expected message type. (Reflection
/// reads its requests itself and ends the stream at one that does not decode; that is allowed
/// here, an error other than MALFORMED_MESSAGE is not.)
#[tokio::test]
async fn health_and_reflection_refuse_malformed_requests_as_the_api_does() {
    let app = TestApp::start().await;
    let channel = app.channel().await;
    let garbage = vec![0xff; 11];
    for (path, message_type, streaming) in [
        (
            "/grpc.health.v1.Health/Check",
            "grpc.health.v1.HealthCheckRequest",
            false,
        ),
        (
            "/grpc.health.v1.Health/Watch",
            "grpc.health.v1.HealthCheckRequest",
            false,
        ),
        (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1.ServerReflectionRequest",
            true,
        ),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflectionRequest",
            true,
        ),
    ] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("ready");
        let uri: http::uri::PathAndQuery = path.parse().expect("path");
        let status = if streaming {
            let request = tonic::Request::new(tokio_stream::iter([garbage.clone()]));
            let answer = match grpc.streaming(request, uri, RawCodec).await {
                Err(status) => Err(status),
                Ok(response) => response.into_inner().message().await,
            };
            match answer {
                Err(status) => status,
                // tonic-reflection ends the stream, OK and with no answer, at a request that
                // does not decode: not precise, but no INTERNAL either.
                Ok(None) => continue,
                Ok(Some(_)) => panic!("{path}: answered a malformed request"),
            }
        } else {
            grpc.unary(tonic::Request::new(garbage.clone()), uri, RawCodec)
                .await
                .expect_err("a malformed request is refused")
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        let details = status.get_error_details();
        let info = details.error_info().cloned().expect("ErrorInfo");
        assert_eq!(info.reason, "MALFORMED_MESSAGE", "{path}");
        assert_eq!(
            info.metadata.get("message_type").map(String::as_str),
            Some(message_type),
            "{path}"
        );
        let fields: Vec<_> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["(message)"], "{path}");
    }
}
