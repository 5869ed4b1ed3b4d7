//! Binding interactions to contacts, contact history, and read-only card links.
//!
//! A service module: imports `client`, `error`, `options`, `retry`, and `contacts` for its
//! card check (a sibling that never imports this one).

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;
use crate::options::{CallOptions, call_options, into_future};
use crate::retry::Idempotent;

fn panel(p: Option<pb::ClientInfoPanel>) -> Result<pb::ClientInfoPanel, SdkError> {
    p.ok_or_else(|| SdkError::Other(tonic::Status::internal("response without a panel")))
}

impl Client {
    /// Starts binding the caller's accepted interaction to a contact; `.await` sends it and
    /// returns the panel after the change. Selecting the bound contact again changes nothing,
    /// so it is retried when it may help.
    ///
    /// ```no_run
    /// # async fn demo(agent: client_info_sdk::Client) -> Result<(), client_info_sdk::SdkError> {
    /// let panel = agent.select_contact("chat-7", 42).relink_channel(true).await?;
    /// # let _ = panel; Ok(()) }
    /// ```
    pub fn select_contact(&self, interaction_id: impl Into<String>, contact_id: i64) -> Select {
        Select {
            client: self.clone(),
            options: CallOptions::default(),
            request: pb::SelectContactRequest {
                interaction_id: interaction_id.into(),
                contact_id,
                relink_channel: false,
            },
        }
    }

    /// Removes the binding of the caller's accepted interaction (idempotent, so retried).
    pub async fn unbind_contact(
        &self,
        interaction_id: impl Into<String>,
    ) -> Result<pb::ClientInfoPanel, SdkError> {
        let interaction_id = interaction_id.into();
        let r = self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_binding();
                let request = pb::UnbindContactRequest {
                    interaction_id: interaction_id.clone(),
                };
                async move { stub.unbind_contact(request).await }
            })
            .await?;
        panel(r.into_inner().panel)
    }

    /// One page of a contact's interaction history, newest first.
    pub async fn list_contact_interactions(
        &self,
        contact_id: i64,
        page_size: i32,
        page_token: impl Into<String>,
    ) -> Result<pb::ListContactInteractionsResponse, SdkError> {
        let request = pb::ListContactInteractionsRequest {
            contact_id,
            page_size,
            page_token: page_token.into(),
        };
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_binding();
                let request = request.clone();
                async move { stub.list_contact_interactions(request).await }
            })
            .await?
            .into_inner())
    }

    /// A signed, expiring read-only link to a contact's card, recorded under its `link_id`
    /// (list and revoke it with [`Client::list_read_only_links`] and
    /// [`Client::revoke_read_only_link`]). Not retried: a repeat would record a second link.
    pub async fn create_read_only_link(
        &self,
        contact_id: i64,
        interaction_id: impl Into<String>,
    ) -> Result<pb::CreateReadOnlyLinkResponse, SdkError> {
        let request = pb::CreateReadOnlyLinkRequest {
            contact_id,
            interaction_id: interaction_id.into(),
        };
        Ok(self
            .run(Idempotent::No, || {
                let mut stub = self.contact_binding();
                let request = request.clone();
                async move { stub.create_read_only_link(request).await }
            })
            .await?
            .into_inner())
    }

    /// Opens a read-only card from a link.
    pub async fn get_contact_by_link(
        &self,
        link: impl Into<String>,
    ) -> Result<pb::Contact, SdkError> {
        crate::contacts::card(self.read_only_card(link).await?.contact)
    }

    /// Opens a read-only card from a link, with the contact's recent history.
    pub async fn read_only_card(
        &self,
        link: impl Into<String>,
    ) -> Result<pb::GetContactByLinkResponse, SdkError> {
        let request = pb::GetContactByLinkRequest { link: link.into() };
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_binding();
                let request = request.clone();
                async move { stub.get_contact_by_link(request).await }
            })
            .await?
            .into_inner())
    }

    /// One page of the links made for a contact, newest first (revoked and expired ones
    /// included); `page_size` 0 means 20, `page_token` "" the first page.
    pub async fn list_read_only_links(
        &self,
        contact_id: i64,
        page_size: i32,
        page_token: impl Into<String>,
    ) -> Result<pb::ListReadOnlyLinksResponse, SdkError> {
        let request = pb::ListReadOnlyLinksRequest {
            contact_id,
            page_size,
            page_token: page_token.into(),
        };
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_binding();
                let request = request.clone();
                async move { stub.list_read_only_links(request).await }
            })
            .await?
            .into_inner())
    }

    /// Revokes one link made for the contact; false when it was revoked already. Opening it
    /// is then refused (`LINK_REVOKED`) on every server at once.
    pub async fn revoke_read_only_link(
        &self,
        contact_id: i64,
        link_id: i64,
    ) -> Result<bool, SdkError> {
        self.revoke_links(
            contact_id,
            pb::revoke_read_only_links_request::Which::LinkId(link_id),
        )
        .await
        .map(|n| n > 0)
    }

    /// Revokes every link to the contact issued until now, the unrecorded ones of summary
    /// views included; how many recorded links were still valid.
    pub async fn revoke_all_read_only_links(&self, contact_id: i64) -> Result<i32, SdkError> {
        self.revoke_links(
            contact_id,
            pb::revoke_read_only_links_request::Which::All(true),
        )
        .await
    }

    async fn revoke_links(
        &self,
        contact_id: i64,
        which: pb::revoke_read_only_links_request::Which,
    ) -> Result<i32, SdkError> {
        let request = pb::RevokeReadOnlyLinksRequest {
            contact_id,
            which: Some(which),
        };
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_binding();
                async move { stub.revoke_read_only_links(request).await }
            })
            .await?
            .into_inner()
            .revoked)
    }
}

/// A selection; see [`Client::select_contact`]. `.await` sends it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until awaited"]
pub struct Select {
    client: Client,
    options: CallOptions,
    request: pb::SelectContactRequest,
}

call_options!(Select);
into_future!(Select => pb::ClientInfoPanel);

impl Select {
    /// In a chat, also moves the chat's messaging identity to the selected contact.
    pub fn relink_channel(mut self, relink: bool) -> Self {
        self.request.relink_channel = relink;
        self
    }

    /// Sends it (the same as `.await`).
    pub async fn send(self) -> Result<pb::ClientInfoPanel, SdkError> {
        self.options.check()?;
        let r = self
            .client
            .run(Idempotent::Yes, || {
                let mut stub = self.client.contact_binding();
                let request = self.options.apply(self.request.clone());
                async move { stub.select_contact(request).await }
            })
            .await?;
        panel(r.into_inner().panel)
    }
}
