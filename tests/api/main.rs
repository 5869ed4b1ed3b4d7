//! Integration tests: the real server in-process on 127.0.0.1:0, each test with its own
//! PostgreSQL database, driven through client-sdk. Modules mirror the services.

mod admin;
mod auth;
mod binding;
mod browser;
mod changes;
mod contacts;
mod duplicates;
mod erase;
mod errors;
mod explain;
mod ha;
mod history;
mod hostile;
mod idp;
mod import;
mod interactions;
mod keys;
mod merge;
mod operations;
mod ordering;
mod phones;
mod python;
mod readme;
mod rollout;
mod sdk;
mod search;
mod server;
mod sessions;
mod tenancy;
mod transport;
mod typos;
mod validation;
mod watch;
