//! Contact cards: read, create, update, delete, link and unlink communications, audit trail.
//!
//! A service module: imports `client`, `error`, `options` and `retry`, no other service module.

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;
use crate::options::{CallOptions, call_options, into_future};
use crate::retry::Idempotent;

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

/// A field mask naming `fields` (`display_name`, `description`, `time_zone`, `owner_id`,
/// `labels`, `attributes`), for a raw `UpdateContactRequest`.
pub fn field_mask<I, S>(fields: I) -> prost_types::FieldMask
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    prost_types::FieldMask {
        paths: fields.into_iter().map(Into::into).collect(),
    }
}

pub(crate) fn card(contact: Option<pb::Contact>) -> Result<pb::Contact, SdkError> {
    contact.ok_or_else(|| SdkError::Other(tonic::Status::internal("response without a contact")))
}

/// A contact created by [`Client::new_contact`] or [`Client::create_contact`].
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The card.
    pub contact: pb::Contact,
    /// False when a retry of the same `request_id` returned the contact created earlier.
    pub created: bool,
}

impl Client {
    /// The full card of a contact (`contacts.read`). Retried when it may help.
    pub async fn get_contact(&self, contact_id: i64) -> Result<pb::Contact, SdkError> {
        let r = self
            .run(Idempotent::Yes, || {
                let mut stub = self.contact_search();
                let request = pb::GetContactRequest { contact_id };
                async move { stub.get_contact(request).await }
            })
            .await?;
        card(r.into_inner().contact)
    }

    /// Creates a contact from a raw request; returns it and whether it was created now (false
    /// on a retry of the same request id). Retried only when it has a `request_id`. See
    /// [`Client::new_contact`] for the builder.
    pub async fn create_contact(
        &self,
        request: pb::CreateContactRequest,
    ) -> Result<(pb::Contact, bool), SdkError> {
        let idempotent = if request.request_id.is_empty() {
            Idempotent::No
        } else {
            Idempotent::Yes
        };
        let r = self
            .run(idempotent, || {
                let mut stub = self.contact_binding();
                let request = request.clone();
                async move { stub.create_contact(request).await }
            })
            .await?
            .into_inner();
        Ok((card(r.contact)?, r.created))
    }

    /// Starts a new contact named `display_name`; `.await` creates it.
    ///
    /// ```no_run
    /// # async fn demo(client: client_info_sdk::Client) -> Result<(), client_info_sdk::SdkError> {
    /// let created = client
    ///     .new_contact("Ann Lee")
    ///     .time_zone("Europe/London")
    ///     .label("VIP")
    ///     .attribute("crm_id", "CRM-42")
    ///     .phone("07400 123456")
    ///     .email("ann@example.com")
    ///     .request_id("crm-42") // a retry returns the same contact, and makes it retryable
    ///     .await?;
    /// println!("{} (created now: {})", created.contact.id, created.created);
    /// # Ok(()) }
    /// ```
    pub fn new_contact(&self, display_name: impl Into<String>) -> NewContact {
        NewContact {
            client: self.clone(),
            options: CallOptions::default(),
            request: pb::CreateContactRequest {
                display_name: display_name.into(),
                ..Default::default()
            },
        }
    }

    /// Updates the fields named in the request's mask (stale version: [`SdkError::Aborted`]
    /// with reason `CONTACT_VERSION_MISMATCH`). Never retried. See [`Client::edit_contact`].
    pub async fn update_contact(
        &self,
        request: pb::UpdateContactRequest,
    ) -> Result<pb::Contact, SdkError> {
        let r = self
            .run(Idempotent::No, || {
                let mut stub = self.contacts();
                let request = request.clone();
                async move { stub.update_contact(request).await }
            })
            .await?;
        card(r.into_inner().contact)
    }

    /// Starts an update of the contact at `expected_version` (the version last read); each
    /// field set is added to the field mask; `.await` sends it.
    ///
    /// ```no_run
    /// # async fn demo(client: client_info_sdk::Client) -> Result<(), client_info_sdk::SdkError> {
    /// let card = client.get_contact(42).await?;
    /// let updated = client
    ///     .edit_contact(card.id, card.version)
    ///     .description("Call after 18:00")
    ///     .labels(["VIP", "Callback"])
    ///     .await?;
    /// # let _ = updated; Ok(()) }
    /// ```
    pub fn edit_contact(&self, contact_id: i64, expected_version: i64) -> ContactEdit {
        ContactEdit {
            client: self.clone(),
            options: CallOptions::default(),
            request: pb::UpdateContactRequest {
                contact_id,
                expected_version,
                update_mask: Some(prost_types::FieldMask::default()),
                ..Default::default()
            },
        }
    }

    /// Deletes a contact (`expected_version` 0 skips the version check). Never retried.
    pub async fn delete_contact(
        &self,
        contact_id: i64,
        expected_version: i64,
    ) -> Result<(), SdkError> {
        self.run(Idempotent::No, || {
            let mut stub = self.contacts();
            let request = pb::DeleteContactRequest {
                contact_id,
                expected_version,
            };
            async move { stub.delete_contact(request).await }
        })
        .await?;
        Ok(())
    }

    /// Starts linking a communication to a contact; `.await` sends it. A messaging identity
    /// held by another contact is refused (`IDENTITY_HELD_BY_OTHER_CONTACT`) unless
    /// `.relink()` moves it.
    pub fn link_communication(
        &self,
        contact_id: i64,
        communication: pb::CommunicationInput,
    ) -> Link {
        Link {
            client: self.clone(),
            options: CallOptions::default(),
            request: pb::LinkCommunicationRequest {
                contact_id,
                expected_version: 0,
                communication: Some(communication),
                relink: false,
            },
        }
    }

    /// Unlinks a communication by its link id (`expected_version` 0 skips the check).
    pub async fn unlink_communication(
        &self,
        contact_id: i64,
        expected_version: i64,
        communication: pb::unlink_communication_request::Communication,
    ) -> Result<pb::Contact, SdkError> {
        let r = self
            .run(Idempotent::No, || {
                let mut stub = self.contact_binding();
                let request = pb::UnlinkCommunicationRequest {
                    contact_id,
                    expected_version,
                    communication: Some(communication),
                };
                async move { stub.unlink_communication(request).await }
            })
            .await?;
        card(r.into_inner().contact)
    }

    /// Erases a contact and every trace of its personal data (`contacts.erase`); see the
    /// server's README. Never retried: repeating it is CONTACT_ERASED.
    pub async fn erase_contact(
        &self,
        contact_id: i64,
    ) -> Result<pb::EraseContactResponse, SdkError> {
        Ok(self
            .contacts()
            .erase_contact(pb::EraseContactRequest { contact_id })
            .await
            .map_err(SdkError::from)?
            .into_inner())
    }

    /// Everything stored about one contact, in one answer (`contacts.read`).
    pub async fn export_contact(
        &self,
        contact_id: i64,
    ) -> Result<pb::ExportContactResponse, SdkError> {
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contacts();
                async move {
                    stub.export_contact(pb::ExportContactRequest { contact_id })
                        .await
                }
            })
            .await?
            .into_inner())
    }

    /// One page of a contact's audit trail, newest first.
    pub async fn list_contact_audit(
        &self,
        contact_id: i64,
        page_size: i32,
        page_token: impl Into<String>,
    ) -> Result<pb::ListContactAuditResponse, SdkError> {
        let page_token = page_token.into();
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.contacts();
                let request = pb::ListContactAuditRequest {
                    contact_id,
                    page_size,
                    page_token: page_token.clone(),
                };
                async move { stub.list_contact_audit(request).await }
            })
            .await?
            .into_inner())
    }

    /// Bulk import: streams `records`; valid ones are kept, rejected ones come back with their
    /// index and field. Never retried (the stream is consumed).
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

/// A contact to create; see [`Client::new_contact`]. `.await` sends it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until awaited"]
pub struct NewContact {
    client: Client,
    options: CallOptions,
    request: pb::CreateContactRequest,
}

call_options!(NewContact);
into_future!(NewContact => Created);

impl NewContact {
    /// Free text (tabs and line breaks kept).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.request.description = description.into();
        self
    }

    /// IANA time zone, for example `Europe/London`.
    pub fn time_zone(mut self, time_zone: impl Into<String>) -> Self {
        self.request.time_zone = time_zone.into();
        self
    }

    /// The owner (a user of the domain); default: the caller.
    pub fn owner(mut self, user_id: i64) -> Self {
        self.request.owner_id = user_id;
        self
    }

    /// Adds a label (existing or new).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.request.labels.push(label.into());
        self
    }

    /// Adds an attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.attributes.push(pb::Attribute {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a phone number, in any format (read in the domain's region).
    pub fn phone(mut self, number: impl Into<String>) -> Self {
        self.request.communications.push(phone(number));
        self
    }

    /// Adds an e-mail address.
    pub fn email(mut self, address: impl Into<String>) -> Self {
        self.request.communications.push(email(address));
        self
    }

    /// Adds a messaging identity.
    pub fn messaging(
        mut self,
        protocol: impl Into<String>,
        external_user_id: impl Into<String>,
        display_name: impl Into<String>,
    ) -> Self {
        self.request
            .communications
            .push(messaging(protocol, external_user_id, display_name));
        self
    }

    /// The idempotency key: a retry with the same key returns the contact created first
    /// (`created: false`), so the call is retried automatically when it may help.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request.request_id = request_id.into();
        self
    }

    /// Creates it from the caller's accepted interaction (the Add button): the call is bound
    /// to it, a chat's identity linked to it. Needs a `request_id`.
    pub fn from_interaction(mut self, interaction_id: impl Into<String>) -> Self {
        self.request.interaction_id = interaction_id.into();
        self
    }

    /// With `from_interaction` on a call, also links the caller's number.
    pub fn link_caller_number(mut self) -> Self {
        self.request.link_caller_number = true;
        self
    }

    /// The request as built (for the raw stubs).
    pub fn into_request(self) -> pb::CreateContactRequest {
        self.request
    }

    /// Sends it (the same as `.await`).
    pub async fn send(self) -> Result<Created, SdkError> {
        let idempotent = if self.request.request_id.is_empty() {
            Idempotent::No
        } else {
            Idempotent::Yes
        };
        self.options.check()?;
        let r = self
            .client
            .run(idempotent, || {
                let mut stub = self.client.contact_binding();
                let request = self.options.apply(self.request.clone());
                async move { stub.create_contact(request).await }
            })
            .await?
            .into_inner();
        Ok(Created {
            contact: card(r.contact)?,
            created: r.created,
        })
    }
}

/// An update of a contact; see [`Client::edit_contact`]. `.await` sends it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until awaited"]
pub struct ContactEdit {
    client: Client,
    options: CallOptions,
    request: pb::UpdateContactRequest,
}

call_options!(ContactEdit);
into_future!(ContactEdit => pb::Contact);

impl ContactEdit {
    fn mask(mut self, field: &str) -> Self {
        if let Some(mask) = &mut self.request.update_mask
            && !mask.paths.iter().any(|p| p == field)
        {
            mask.paths.push(field.to_owned());
        }
        self
    }

    /// Sets the display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.request.display_name = name.into();
        self.mask("display_name")
    }

    /// Sets the description ("" clears it).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.request.description = description.into();
        self.mask("description")
    }

    /// Sets the time zone ("" clears it).
    pub fn time_zone(mut self, time_zone: impl Into<String>) -> Self {
        self.request.time_zone = time_zone.into();
        self.mask("time_zone")
    }

    /// Sets the owner.
    pub fn owner(mut self, user_id: i64) -> Self {
        self.request.owner_id = user_id;
        self.mask("owner_id")
    }

    /// Replaces the labels.
    pub fn labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.labels = labels.into_iter().map(Into::into).collect();
        self.mask("labels")
    }

    /// Replaces the attributes.
    pub fn attributes<I, K, V>(mut self, attributes: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.request.attributes = attributes
            .into_iter()
            .map(|(key, value)| pb::Attribute {
                key: key.into(),
                value: value.into(),
            })
            .collect();
        self.mask("attributes")
    }

    /// The request as built.
    pub fn into_request(self) -> pb::UpdateContactRequest {
        self.request
    }

    /// Sends it (the same as `.await`). Never retried: reload and edit again on
    /// `CONTACT_VERSION_MISMATCH`.
    pub async fn send(self) -> Result<pb::Contact, SdkError> {
        self.options.check()?;
        let r = self
            .client
            .contacts()
            .update_contact(self.options.apply(self.request))
            .await
            .map_err(SdkError::from)?;
        card(r.into_inner().contact)
    }
}

/// A communication to link; see [`Client::link_communication`]. `.await` sends it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until awaited"]
pub struct Link {
    client: Client,
    options: CallOptions,
    request: pb::LinkCommunicationRequest,
}

call_options!(Link);
into_future!(Link => pb::Contact);

impl Link {
    /// Checks the contact is still at this version (ABORTED otherwise); 0 skips the check.
    pub fn expected_version(mut self, version: i64) -> Self {
        self.request.expected_version = version;
        self
    }

    /// Moves a messaging identity another contact holds (both audit trails record it).
    pub fn relink(mut self) -> Self {
        self.request.relink = true;
        self
    }

    /// Sends it (the same as `.await`). Never retried.
    pub async fn send(self) -> Result<pb::Contact, SdkError> {
        self.options.check()?;
        let r = self
            .client
            .contact_binding()
            .link_communication(self.options.apply(self.request))
            .await
            .map_err(SdkError::from)?;
        card(r.into_inner().contact)
    }
}
