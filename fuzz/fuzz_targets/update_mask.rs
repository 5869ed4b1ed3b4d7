//! UpdateContact's update mask and the fields it names (`grpc::decode::contacts::patch`).
//!
//! Input: one byte of flags, an owner id, then lines of text: the mask's paths up to an empty
//! line, then the display name, description, time zone, a label, an attribute key and value.
//! Properties: nothing panics; a refusal is INVALID_ARGUMENT naming its fields, an unknown
//! path as `update_mask.paths[i]`; a patch sets exactly the fields its mask names (an update
//! never touches another); the patch written back as a request (its normalised values, the
//! mask of the fields it sets) validates to the same patch: normalisation is a fixed point.
#![no_main]

use client_info_fuzz::{Reader, assert_precise};
use client_info_proto::pb;
use client_info_server::domain::contact::ContactPatch;
use client_info_server::error::Error;
use client_info_server::grpc::decode::contacts::{UPDATABLE_FIELDS, patch};
use libfuzzer_sys::fuzz_target;

/// The request that asks for `patch` and nothing else.
fn request_of(patch: &ContactPatch) -> pb::UpdateContactRequest {
    let mut paths = Vec::new();
    let mut req = pb::UpdateContactRequest::default();
    if let Some(v) = &patch.display_name {
        paths.push("display_name");
        req.display_name = v.clone();
    }
    if let Some(v) = &patch.description {
        paths.push("description");
        req.description = v.clone();
    }
    if let Some(v) = &patch.time_zone {
        paths.push("time_zone");
        req.time_zone = v.clone();
    }
    if let Some(v) = patch.owner {
        paths.push("owner_id");
        req.owner_id = v.0;
    }
    if let Some(v) = &patch.labels {
        paths.push("labels");
        req.labels = v.clone();
    }
    if let Some(v) = &patch.attributes {
        paths.push("attributes");
        req.attributes = v
            .iter()
            .map(|a| pb::Attribute {
                key: a.key.clone(),
                value: a.value.clone(),
            })
            .collect();
    }
    req.update_mask = Some(prost_types::FieldMask {
        paths: paths.into_iter().map(str::to_owned).collect(),
    });
    req
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let flags = r.u8();
    let owner = r.i64();
    let text = r.rest_text();
    let mut lines = text.split('\n');
    let mut paths: Vec<String> = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        // A byte below 6 names an updatable field, as clients write them most of the time.
        match line.as_bytes() {
            [b] if usize::from(*b) < UPDATABLE_FIELDS.len() => {
                paths.push(UPDATABLE_FIELDS[usize::from(*b)].to_owned())
            }
            _ => paths.push(line.to_owned()),
        }
    }
    let mut next = || lines.next().unwrap_or_default().to_owned();
    let mut req = pb::UpdateContactRequest {
        contact_id: 1,
        expected_version: 1,
        owner_id: owner,
        display_name: next(),
        description: next(),
        time_zone: next(),
        ..Default::default()
    };
    if flags & 1 != 0 {
        req.labels.push(next());
    }
    if flags & 2 != 0 {
        req.attributes.push(pb::Attribute {
            key: next(),
            value: next(),
        });
    }
    if flags & 4 == 0 {
        req.update_mask = Some(prost_types::FieldMask {
            paths: paths.clone(),
        });
    } else {
        // No mask at all: it names nothing.
        paths.clear();
    }

    match patch(&req) {
        Ok(p) => {
            let named = |f: &str| paths.iter().any(|p| p == f);
            assert_eq!(p.display_name.is_some(), named("display_name"));
            assert_eq!(p.description.is_some(), named("description"));
            assert_eq!(p.time_zone.is_some(), named("time_zone"));
            assert_eq!(p.owner.is_some(), named("owner_id"));
            assert_eq!(p.labels.is_some(), named("labels"));
            assert_eq!(p.attributes.is_some(), named("attributes"));
            assert!(!p.is_empty());
            let again = patch(&request_of(&p))
                .unwrap_or_else(|v| panic!("{p:?} written back is refused: {v:?}"));
            assert_eq!(format!("{again:?}"), format!("{p:?}"), "not a fixed point");
        }
        Err(v) => {
            let err: Error = v.into();
            if let Error::InvalidArgument(violations) = &err {
                for (i, path) in paths.iter().enumerate() {
                    if !UPDATABLE_FIELDS.contains(&path.as_str()) {
                        let field = format!("update_mask.paths[{i}]");
                        assert!(
                            violations.iter().any(|v| v.field == field),
                            "{path:?} unnamed"
                        );
                    }
                }
            }
            assert_precise("UpdateContact", err);
        }
    }
});
