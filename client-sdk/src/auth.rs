//! The bearer-token interceptor.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Debug, Clone, Default)]
pub struct BearerInterceptor {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerInterceptor {
    /// An interceptor sending `header` (already `Bearer ...`), or nothing.
    pub(crate) fn new(header: Option<MetadataValue<Ascii>>) -> Self {
        Self { header }
    }
}

impl Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}
