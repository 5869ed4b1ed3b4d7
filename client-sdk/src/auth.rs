//! The interceptor every call goes through: the bearer token and the call's deadline.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Marks a request that must not carry the client's default deadline (a session stream lives
/// as long as the desktop does).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoDeadline;

/// Adds `authorization: Bearer <token>` when a token is set, and the client's deadline
/// (`grpc-timeout`) unless the call set its own or is a stream.
#[derive(Debug, Clone)]
pub struct CallInterceptor {
    header: Option<MetadataValue<Ascii>>,
    timeout: Duration,
}

impl CallInterceptor {
    /// An interceptor sending `header` (already `Bearer ...`), or nothing, and `timeout`.
    pub(crate) fn new(header: Option<MetadataValue<Ascii>>, timeout: Duration) -> Self {
        Self { header, timeout }
    }

    /// The same with another deadline.
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Interceptor for CallInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        if request.extensions().get::<NoDeadline>().is_none()
            && request.metadata().get("grpc-timeout").is_none()
        {
            request.set_timeout(self.timeout);
        }
        Ok(request)
    }
}
