//! Binding interactions to contacts, contact history, and read-only card links.

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;

fn panel(p: Option<pb::ClientInfoPanel>) -> Result<pb::ClientInfoPanel, SdkError> {
    p.ok_or_else(|| SdkError::Other(tonic::Status::internal("response without a panel")))
}

impl Client {
    /// Binds the caller's accepted interaction to a contact; `relink_channel` (chats) also moves
    /// the chat's identity to it. Returns the panel after the change.
    pub async fn select_contact(
        &self,
        interaction_id: impl Into<String>,
        contact_id: i64,
        relink_channel: bool,
    ) -> Result<pb::ClientInfoPanel, SdkError> {
        let r = self
            .contact_binding()
            .select_contact(pb::SelectContactRequest {
                interaction_id: interaction_id.into(),
                contact_id,
                relink_channel,
            })
            .await?;
        panel(r.into_inner().panel)
    }

    /// Removes the binding of the caller's accepted interaction (idempotent).
    pub async fn unbind_contact(
        &self,
        interaction_id: impl Into<String>,
    ) -> Result<pb::ClientInfoPanel, SdkError> {
        let r = self
            .contact_binding()
            .unbind_contact(pb::UnbindContactRequest {
                interaction_id: interaction_id.into(),
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
        Ok(self
            .contact_binding()
            .list_contact_interactions(pb::ListContactInteractionsRequest {
                contact_id,
                page_size,
                page_token: page_token.into(),
            })
            .await?
            .into_inner())
    }

    /// A signed, expiring read-only link to a contact's card.
    pub async fn create_read_only_link(
        &self,
        contact_id: i64,
        interaction_id: impl Into<String>,
    ) -> Result<pb::CreateReadOnlyLinkResponse, SdkError> {
        Ok(self
            .contact_binding()
            .create_read_only_link(pb::CreateReadOnlyLinkRequest {
                contact_id,
                interaction_id: interaction_id.into(),
            })
            .await?
            .into_inner())
    }

    /// Opens a read-only card from a link.
    pub async fn get_contact_by_link(
        &self,
        link: impl Into<String>,
    ) -> Result<pb::Contact, SdkError> {
        self.contact_binding()
            .get_contact_by_link(pb::GetContactByLinkRequest { link: link.into() })
            .await?
            .into_inner()
            .contact
            .ok_or_else(|| SdkError::Other(tonic::Status::internal("response without a contact")))
    }
}
