//! Contact cards: read, create, update, delete, link and unlink communications, audit trail.

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;

/// A phone number to link, in any format.
pub fn phone(number: impl Into<String>) -> pb::CommunicationInput {
    pb::CommunicationInput {
        communication: Some(pb::communication_input::Communication::Phone(
            pb::PhoneInput {
                number: number.into(),
            },
        )),
    }
}

/// An e-mail address to link.
pub fn email(address: impl Into<String>) -> pb::CommunicationInput {
    pb::CommunicationInput {
        communication: Some(pb::communication_input::Communication::Email(
            pb::EmailInput {
                address: address.into(),
            },
        )),
    }
}

/// A messaging identity to link.
pub fn messaging(
    protocol: impl Into<String>,
    external_user_id: impl Into<String>,
    display_name: impl Into<String>,
) -> pb::CommunicationInput {
    pb::CommunicationInput {
        communication: Some(pb::communication_input::Communication::MessagingChannel(
            pb::MessagingChannelInput {
                protocol: protocol.into(),
                external_user_id: external_user_id.into(),
                display_name: display_name.into(),
            },
        )),
    }
}

fn card(contact: Option<pb::Contact>) -> Result<pb::Contact, SdkError> {
    contact.ok_or_else(|| SdkError::Other(tonic::Status::internal("response without a contact")))
}

impl Client {
    /// The full card of a contact (`contacts.read`).
    pub async fn get_contact(&self, contact_id: i64) -> Result<pb::Contact, SdkError> {
        let r = self
            .contact_search()
            .get_contact(pb::GetContactRequest { contact_id })
            .await?;
        card(r.into_inner().contact)
    }

    /// Creates a contact; returns it and whether it was created now (false on a retry of the
    /// same request id).
    pub async fn create_contact(
        &self,
        request: pb::CreateContactRequest,
    ) -> Result<(pb::Contact, bool), SdkError> {
        let r = self
            .contact_binding()
            .create_contact(request)
            .await?
            .into_inner();
        Ok((card(r.contact)?, r.created))
    }

    /// Updates the fields named in the request's mask (stale version: [`SdkError::Aborted`]).
    pub async fn update_contact(
        &self,
        request: pb::UpdateContactRequest,
    ) -> Result<pb::Contact, SdkError> {
        let r = self.contacts().update_contact(request).await?;
        card(r.into_inner().contact)
    }

    /// Deletes a contact (`expected_version` 0 skips the version check).
    pub async fn delete_contact(
        &self,
        contact_id: i64,
        expected_version: i64,
    ) -> Result<(), SdkError> {
        self.contacts()
            .delete_contact(pb::DeleteContactRequest {
                contact_id,
                expected_version,
            })
            .await?;
        Ok(())
    }

    /// Links a communication; `relink` moves a messaging identity held by another contact.
    pub async fn link_communication(
        &self,
        contact_id: i64,
        expected_version: i64,
        communication: pb::CommunicationInput,
        relink: bool,
    ) -> Result<pb::Contact, SdkError> {
        let r = self
            .contact_binding()
            .link_communication(pb::LinkCommunicationRequest {
                contact_id,
                expected_version,
                communication: Some(communication),
                relink,
            })
            .await?;
        card(r.into_inner().contact)
    }

    /// Unlinks a communication by its link id.
    pub async fn unlink_communication(
        &self,
        contact_id: i64,
        expected_version: i64,
        communication: pb::unlink_communication_request::Communication,
    ) -> Result<pb::Contact, SdkError> {
        let r = self
            .contact_binding()
            .unlink_communication(pb::UnlinkCommunicationRequest {
                contact_id,
                expected_version,
                communication: Some(communication),
            })
            .await?;
        card(r.into_inner().contact)
    }

    /// One page of a contact's audit trail, newest first.
    pub async fn list_contact_audit(
        &self,
        contact_id: i64,
        page_size: i32,
        page_token: impl Into<String>,
    ) -> Result<pb::ListContactAuditResponse, SdkError> {
        Ok(self
            .contacts()
            .list_contact_audit(pb::ListContactAuditRequest {
                contact_id,
                page_size,
                page_token: page_token.into(),
            })
            .await?
            .into_inner())
    }
}

impl Client {
    /// Bulk import: streams `records`; valid ones are kept, rejected ones come back with their
    /// index and field.
    pub async fn import_contacts<S>(
        &self,
        records: S,
    ) -> Result<pb::ImportContactsResponse, SdkError>
    where
        S: tokio_stream::Stream<Item = pb::ImportContactsRequest> + Send + 'static,
    {
        Ok(self.contacts().import_contacts(records).await?.into_inner())
    }
}
