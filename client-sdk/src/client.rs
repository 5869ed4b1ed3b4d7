//! The client, its builder, and access to each service's stub.

use std::time::Duration;

use client_info_proto::pb;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::BearerInterceptor;
use crate::error::SdkError;

/// Default deadline of a unary call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A channel with the bearer interceptor, as the generated stubs take it.
pub type AuthChannel = InterceptedService<Channel, BearerInterceptor>;

/// Configures a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// Sends `authorization: Bearer <token>` with every call.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Deadline of each unary call (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects.
    pub async fn connect(self) -> Result<Client, SdkError> {
        let endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| SdkError::Config(format!("bad URL {:?}: {e}", self.url)))?
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await?;
        Client::from_channel(channel, self.token.as_deref())
    }
}

/// A client-info client: cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    auth: BearerInterceptor,
}

impl Client {
    /// Starts configuring a client for `url` (for example `http://127.0.0.1:50051`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel, token: Option<&str>) -> Result<Client, SdkError> {
        let header = token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| SdkError::Config("the token is not a valid header value".into()))
            })
            .transpose()?;
        Ok(Client {
            channel,
            auth: BearerInterceptor::new(header),
        })
    }

    /// The same connection with another token (`None`: no token).
    pub fn with_token(&self, token: Option<&str>) -> Result<Client, SdkError> {
        Client::from_channel(self.channel.clone(), token)
    }

    fn authed(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    /// The raw `InteractionsService` stub.
    pub fn interactions(
        &self,
    ) -> pb::interactions_service_client::InteractionsServiceClient<AuthChannel> {
        pb::interactions_service_client::InteractionsServiceClient::new(self.authed())
    }

    /// The raw `ClientInfoService` stub.
    pub fn client_info(
        &self,
    ) -> pb::client_info_service_client::ClientInfoServiceClient<AuthChannel> {
        pb::client_info_service_client::ClientInfoServiceClient::new(self.authed())
    }

    /// The raw `ContactSearchService` stub.
    pub fn contact_search(
        &self,
    ) -> pb::contact_search_service_client::ContactSearchServiceClient<AuthChannel> {
        pb::contact_search_service_client::ContactSearchServiceClient::new(self.authed())
    }

    /// The raw `ContactBindingService` stub.
    pub fn contact_binding(
        &self,
    ) -> pb::contact_binding_service_client::ContactBindingServiceClient<AuthChannel> {
        pb::contact_binding_service_client::ContactBindingServiceClient::new(self.authed())
    }

    /// The raw `ContactsService` stub.
    pub fn contacts(&self) -> pb::contacts_service_client::ContactsServiceClient<AuthChannel> {
        pb::contacts_service_client::ContactsServiceClient::new(self.authed())
    }
}
