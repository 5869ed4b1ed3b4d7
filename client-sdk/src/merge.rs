//! Duplicate contacts: find them, merge them, undo a merge.
//!
//! A service module: imports `client`, `error`, `options` and `retry`, no other service module.

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;
use crate::options::{CallOptions, call_options, into_future};
use crate::retry::Idempotent;

impl Client {
    /// One page of duplicate groups (`contacts.read`). A page may hold fewer groups than asked,
    /// even none, while `next_page_token` is set: page until it is empty (or use
    /// [`Client::all_duplicates`]). Retried when it may help.
    pub async fn find_duplicates(
        &self,
        request: pb::FindDuplicatesRequest,
    ) -> Result<pb::FindDuplicatesResponse, SdkError> {
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contacts();
                let request = request.clone();
                async move { stub.find_duplicates(request).await }
            })
            .await?
            .into_inner())
    }

    /// Every duplicate group of a query, following page tokens from `request`'s.
    pub async fn all_duplicates(
        &self,
        mut request: pb::FindDuplicatesRequest,
    ) -> Result<Vec<pb::DuplicateGroup>, SdkError> {
        let mut all = Vec::new();
        loop {
            let page = self.find_duplicates(request.clone()).await?;
            all.extend(page.groups);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            request.page_token = page.next_page_token;
        }
    }

    /// Starts a merge into the contact `survivor_id` at `expected_version` (the version last
    /// read); add the contacts to merge with `.contact(id, version)`, choose fields with the
    /// `*_from` methods; `.await` sends it (`contacts.write`). Never retried.
    ///
    /// ```no_run
    /// # async fn demo(client: client_info_sdk::Client) -> Result<(), client_info_sdk::SdkError> {
    /// let (a, b) = (client.get_contact(41).await?, client.get_contact(42).await?);
    /// let merged = client
    ///     .merge_into(a.id, a.version)
    ///     .contact(b.id, b.version)
    ///     .display_name_from(b.id)
    ///     .await?;
    /// // Wrong? Undo it within the retention window (30 days by default):
    /// let undone = client.unmerge_contacts(merged.merge_id, false).await?;
    /// # let _ = undone; Ok(()) }
    /// ```
    pub fn merge_into(&self, survivor_id: i64, expected_version: i64) -> Merge {
        Merge {
            client: self.clone(),
            options: CallOptions::default(),
            request: pb::MergeContactsRequest {
                survivor: Some(pb::ContactVersion {
                    contact_id: survivor_id,
                    expected_version,
                }),
                merged: Vec::new(),
                field_sources: Some(pb::MergeFieldSources::default()),
            },
        }
    }

    /// Merges contacts from a raw request. Never retried. See [`Client::merge_into`].
    pub async fn merge_contacts(
        &self,
        request: pb::MergeContactsRequest,
    ) -> Result<pb::MergeContactsResponse, SdkError> {
        Ok(self
            .contacts()
            .merge_contacts(request)
            .await
            .map_err(SdkError::from)?
            .into_inner())
    }

    /// Undoes merge `merge_id` (`contacts.write`). Without `force`, communications that cannot
    /// go back fail it ([`SdkError::FailedPrecondition`], reason `UNMERGE_CONFLICT`, one
    /// [`SdkError::preconditions`] entry each); with `force` they are left out and listed in
    /// `skipped`. Never retried.
    pub async fn unmerge_contacts(
        &self,
        merge_id: i64,
        force: bool,
    ) -> Result<pb::UnmergeContactsResponse, SdkError> {
        Ok(self
            .contacts()
            .unmerge_contacts(pb::UnmergeContactsRequest { merge_id, force })
            .await
            .map_err(SdkError::from)?
            .into_inner())
    }
}

/// A merge to send; see [`Client::merge_into`]. `.await` sends it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until awaited"]
pub struct Merge {
    client: Client,
    options: CallOptions,
    request: pb::MergeContactsRequest,
}

call_options!(Merge);
into_future!(Merge => pb::MergeContactsResponse);

impl Merge {
    fn sources(&mut self) -> &mut pb::MergeFieldSources {
        self.request
            .field_sources
            .get_or_insert_with(pb::MergeFieldSources::default)
    }

    /// Adds a contact to merge into the survivor, at the version last read.
    pub fn contact(mut self, contact_id: i64, expected_version: i64) -> Self {
        self.request.merged.push(pb::ContactVersion {
            contact_id,
            expected_version,
        });
        self
    }

    /// The survivor takes this contact's display name.
    pub fn display_name_from(mut self, contact_id: i64) -> Self {
        self.sources().display_name_from = contact_id;
        self
    }

    /// The survivor takes this contact's description.
    pub fn description_from(mut self, contact_id: i64) -> Self {
        self.sources().description_from = contact_id;
        self
    }

    /// The survivor takes this contact's time zone.
    pub fn time_zone_from(mut self, contact_id: i64) -> Self {
        self.sources().time_zone_from = contact_id;
        self
    }

    /// The survivor takes this contact's owner.
    pub fn owner_from(mut self, contact_id: i64) -> Self {
        self.sources().owner_from = contact_id;
        self
    }

    /// The survivor takes this contact's value of attribute `key` (or loses the key when that
    /// contact has none).
    pub fn attribute_from(mut self, key: impl Into<String>, contact_id: i64) -> Self {
        self.sources().attributes.push(pb::AttributeSource {
            key: key.into(),
            contact_id,
        });
        self
    }

    /// The request as built.
    pub fn into_request(self) -> pb::MergeContactsRequest {
        self.request
    }

    /// Sends it (the same as `.await`). Never retried: on `CONTACT_VERSION_MISMATCH` reload
    /// the contacts and merge again.
    pub async fn send(self) -> Result<pb::MergeContactsResponse, SdkError> {
        self.options.check()?;
        Ok(self
            .client
            .contacts()
            .merge_contacts(self.options.apply(self.request))
            .await
            .map_err(SdkError::from)?
            .into_inner())
    }
}
