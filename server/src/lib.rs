//! client-info: a gRPC service that tells a contact-center agent who is on the line.
//!
//! The library holds everything the `client-info-server` binary runs, so that the integration
//! tests can start the real server in-process.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod hub;
pub mod hugepages;
pub mod metrics;
pub mod rpc;
pub mod server;
pub mod sessions;
pub mod telemetry;
pub mod transport;
pub mod version;
pub mod web;
pub mod wire;
