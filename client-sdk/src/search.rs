//! Contact search and label autocomplete.
//!
//! A service module: imports `client`, `error`, `options` and `retry`, no other service module.

use client_info_proto::pb;
use tokio_stream::Stream;

use crate::client::Client;
use crate::error::SdkError;
use crate::options::{CallOptions, call_options};
use crate::retry::Idempotent;

/// How a search's conditions combine.
pub use pb::SearchCombine as Combine;

impl Client {
    /// One page of a contact search, from a raw request. Retried when it may help. See
    /// [`Client::search`] for the builder.
    pub async fn search_contacts(
        &self,
        request: pb::SearchContactsRequest,
    ) -> Result<pb::SearchContactsResponse, SdkError> {
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_search();
                let request = request.clone();
                async move { stub.search_contacts(request).await }
            })
            .await?
            .into_inner())
    }

    /// Every hit of a search, following page tokens (`page_size` per call).
    pub async fn search_all(
        &self,
        request: pb::SearchContactsRequest,
    ) -> Result<Vec<pb::SearchHit>, SdkError> {
        use tokio_stream::StreamExt as _;
        let hits: Vec<_> = self.search_from(request).stream().collect().await;
        hits.into_iter().collect()
    }

    /// Starts a search; set conditions, then `.page()` for one page or `.stream()` for every
    /// hit, fetched page by page as the stream is read.
    ///
    /// ```no_run
    /// # async fn demo(client: client_info_sdk::Client) -> Result<(), client_info_sdk::SdkError> {
    /// use tokio_stream::StreamExt as _;
    /// let mut hits = Box::pin(client.search().name("lopez").label("VIP").page_size(50).stream());
    /// while let Some(hit) = hits.next().await {
    ///     let hit = hit?;
    ///     println!("{:?} found by {:?}", hit.contact, hit.found_by);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn search(&self) -> Search {
        self.search_from(pb::SearchContactsRequest::default())
    }

    fn search_from(&self, request: pb::SearchContactsRequest) -> Search {
        Search {
            client: self.clone(),
            options: CallOptions::default(),
            request,
        }
    }

    /// Labels starting with `prefix`, most used first.
    pub async fn list_labels(
        &self,
        prefix: impl Into<String>,
        page_size: i32,
    ) -> Result<Vec<pb::LabelCount>, SdkError> {
        let request = pb::ListLabelsRequest {
            prefix: prefix.into(),
            page_size,
        };
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_search();
                let request = request.clone();
                async move { stub.list_labels(request).await }
            })
            .await?
            .into_inner()
            .labels)
    }
}

/// A search; see [`Client::search`].
#[derive(Debug, Clone)]
#[must_use = "a search does nothing until .page() or .stream()"]
pub struct Search {
    client: Client,
    options: CallOptions,
    request: pb::SearchContactsRequest,
}

call_options!(Search);

impl Search {
    /// A name: case- and accent-insensitive substring, or word by word in any order forgiving
    /// typos (one in a word of 5 letters, two from 9).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.request.name = name.into();
        self
    }

    /// A phone number in any format, digits inside numbers, or an e-mail (prefix).
    pub fn destination(mut self, destination: impl Into<String>) -> Self {
        self.request.destination = destination.into();
        self
    }

    /// An attribute with exactly this value.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.attributes.push(pb::AttributeCondition {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// An attribute with any value.
    pub fn has_attribute(self, key: impl Into<String>) -> Self {
        self.attribute(key, "*")
    }

    /// A messaging identity.
    pub fn messaging(
        mut self,
        protocol: impl Into<String>,
        external_user_id: impl Into<String>,
    ) -> Self {
        self.request.messaging = Some(pb::MessagingIdentity {
            protocol: protocol.into(),
            external_user_id: external_user_id.into(),
        });
        self
    }

    /// Only contacts with this label (every label given).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.request.labels.push(label.into());
        self
    }

    /// Only contacts of this owner.
    pub fn owner(mut self, user_id: i64) -> Self {
        self.request.owner_id = user_id;
        self
    }

    /// How the conditions combine (default: all of them).
    pub fn combine(mut self, combine: Combine) -> Self {
        self.request.combine = combine as i32;
        self
    }

    /// Searches on behalf of an accepted interaction (agents without `contacts.read`).
    pub fn in_interaction(mut self, interaction_id: impl Into<String>) -> Self {
        self.request.interaction_id = interaction_id.into();
        self
    }

    /// Hits per page, 1 to 100 (default 20).
    pub fn page_size(mut self, size: i32) -> Self {
        self.request.page_size = size;
        self
    }

    /// Continues from a page token of an earlier page.
    pub fn page_token(mut self, token: impl Into<String>) -> Self {
        self.request.page_token = token.into();
        self
    }

    /// The request as built.
    pub fn into_request(self) -> pb::SearchContactsRequest {
        self.request
    }

    /// One page. Retried when it may help.
    pub async fn page(&self) -> Result<pb::SearchContactsResponse, SdkError> {
        self.options.check()?;
        Ok(self
            .client
            .run(Idempotent::Yes, || {
                let mut stub = self.client.contact_search();
                let request = self.options.apply(self.request.clone());
                async move { stub.search_contacts(request).await }
            })
            .await?
            .into_inner())
    }

    /// Every hit, in order; the next page is fetched only when the stream is read past the
    /// current one. An error ends the stream after it is yielded.
    pub fn stream(self) -> impl Stream<Item = Result<pb::SearchHit, SdkError>> + Send + 'static {
        enum State {
            Next(Box<Search>),
            Done,
        }
        let pages = futures_util::stream::unfold(State::Next(Box::new(self)), |state| async move {
            let State::Next(mut search) = state else {
                return None;
            };
            match search.page().await {
                Ok(page) => {
                    let next = if page.has_more && !page.next_page_token.is_empty() {
                        search.request.page_token = page.next_page_token.clone();
                        State::Next(search)
                    } else {
                        State::Done
                    };
                    let hits: Vec<Result<pb::SearchHit, SdkError>> =
                        page.hits.into_iter().map(Ok).collect();
                    Some((futures_util::stream::iter(hits), next))
                }
                Err(e) => Some((futures_util::stream::iter(vec![Err(e)]), State::Done)),
            }
        });
        futures_util::StreamExt::flatten(pages)
    }
}
