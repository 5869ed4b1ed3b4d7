//! How a call authenticates: no token, a fixed token, or a provider asked before each call.
//!
//! A leaf: imports nothing of the crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tonic::metadata::{Ascii, MetadataValue};

/// Marks a request that must not carry the client's default deadline (a session stream lives
/// as long as the desktop does).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoDeadline;

/// Asked for a token before each call.
pub(crate) type TokenProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// The credentials of a client.
#[derive(Clone)]
pub(crate) enum Auth {
    /// No token.
    None,
    /// `Bearer <token>`, fixed.
    Static(MetadataValue<Ascii>),
    /// A token asked of the provider for each call.
    Provider(TokenProvider),
}

impl Auth {
    /// The `authorization` header value for the next call.
    pub(crate) async fn header(&self) -> Result<Option<MetadataValue<Ascii>>, tonic::Status> {
        match self {
            Auth::None => Ok(None),
            Auth::Static(v) => Ok(Some(v.clone())),
            Auth::Provider(p) => {
                let token = p().await;
                MetadataValue::try_from(format!("Bearer {token}"))
                    .map(Some)
                    .map_err(|_| {
                        tonic::Status::unauthenticated(
                            "the token provider returned a token that is not a valid header value",
                        )
                    })
            }
        }
    }
}
