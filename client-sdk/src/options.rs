//! Per-call options shared by the request builders: a deadline and metadata of their own.
//!
//! Imports only `error` of the crate.

use std::time::Duration;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

use crate::error::SdkError;

/// A call's own deadline and metadata (over the client's).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallOptions {
    timeout: Option<Duration>,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    invalid: Option<String>,
}

impl CallOptions {
    pub(crate) fn timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    pub(crate) fn metadata(&mut self, key: &str, value: &str) {
        match (
            AsciiMetadataKey::from_bytes(key.as_bytes()),
            AsciiMetadataValue::try_from(value),
        ) {
            (Ok(k), Ok(v)) => self.metadata.push((k, v)),
            _ => self.invalid = Some(format!("metadata {key:?} is not a valid header")),
        }
    }

    /// The configuration error a bad option made, if one did.
    pub(crate) fn check(&self) -> Result<(), SdkError> {
        match &self.invalid {
            Some(e) => Err(SdkError::Config(e.clone())),
            None => Ok(()),
        }
    }

    /// The request for `message`, with the options (check them first).
    pub(crate) fn apply<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(t) = self.timeout {
            request.set_timeout(t);
        }
        for (k, v) in &self.metadata {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        request
    }
}

/// Adds `.timeout(..)` and `.metadata(..)` to a builder with an `options: CallOptions` field.
macro_rules! call_options {
    ($builder:ident) => {
        impl $builder {
            /// This call's deadline, instead of the client's.
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.options.timeout(timeout);
                self
            }

            /// Sends this metadata with this call (over the client's).
            pub fn metadata(mut self, key: &str, value: &str) -> Self {
                self.options.metadata(key, value);
                self
            }
        }
    };
}

/// Makes a builder awaitable: `.await` sends it through `$send`.
macro_rules! into_future {
    ($builder:ident => $output:ty) => {
        impl std::future::IntoFuture for $builder {
            type Output = Result<$output, crate::error::SdkError>;
            type IntoFuture =
                std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.send())
            }
        }
    };
}

pub(crate) use {call_options, into_future};
