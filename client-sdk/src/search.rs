//! Contact search and label autocomplete.

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;

impl Client {
    /// One page of a contact search.
    pub async fn search_contacts(
        &self,
        request: pb::SearchContactsRequest,
    ) -> Result<pb::SearchContactsResponse, SdkError> {
        Ok(self
            .contact_search()
            .search_contacts(request)
            .await?
            .into_inner())
    }

    /// Every hit of a search, following page tokens (`page_size` per call).
    pub async fn search_all(
        &self,
        mut request: pb::SearchContactsRequest,
    ) -> Result<Vec<pb::SearchHit>, SdkError> {
        let mut hits = Vec::new();
        loop {
            let page = self.search_contacts(request.clone()).await?;
            hits.extend(page.hits);
            if !page.has_more {
                return Ok(hits);
            }
            request.page_token = page.next_page_token;
        }
    }

    /// Labels starting with `prefix`, most used first.
    pub async fn list_labels(
        &self,
        prefix: impl Into<String>,
        page_size: i32,
    ) -> Result<Vec<pb::LabelCount>, SdkError> {
        Ok(self
            .contact_search()
            .list_labels(pb::ListLabelsRequest {
                prefix: prefix.into(),
                page_size,
            })
            .await?
            .into_inner()
            .labels)
    }
}
