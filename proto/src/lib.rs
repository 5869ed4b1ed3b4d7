//! The client-info gRPC API, package `clientinfo.v1`: generated messages, client and server
//! stubs, and the encoded file descriptor set for server reflection.
//!
//! The `.proto` sources under `proto/clientinfo/v1` are the single source of truth.

/// Generated code for package `clientinfo.v1`.
pub mod pb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
    #[rustfmt::skip]
    mod generated {
        include!(concat!(env!("OUT_DIR"), "/clientinfo.v1.rs"));
    }
    pub use generated::*;
}

pub mod codec;

#[rustfmt::skip]
mod wire_roles {
    include!(concat!(env!("OUT_DIR"), "/wire_roles.rs"));
}

/// The encoded `FileDescriptorSet` of every `clientinfo.v1` file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/clientinfo_descriptor.bin"));
