//! Interactions (routing side) and the Client info panel (agent side).
//!
//! A service module: imports `client`, `error`, `options` and `retry`, no other service module.

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;
use crate::options::{CallOptions, call_options, into_future};
use crate::retry::Idempotent;

/// An inbound call offer from `number` to `agent_user_id`.
pub fn call(
    interaction_id: impl Into<String>,
    number: impl Into<String>,
    agent_user_id: i64,
) -> pb::OfferInteractionRequest {
    pb::OfferInteractionRequest {
        interaction_id: interaction_id.into(),
        kind: pb::InteractionKind::Call as i32,
        direction: pb::InteractionDirection::Inbound as i32,
        destination: Some(pb::ClientDestination {
            destination: Some(pb::client_destination::Destination::Call(
                pb::CallerNumber {
                    number: number.into(),
                    hidden: false,
                },
            )),
        }),
        agent_user_id,
        ..Default::default()
    }
}

/// An identification key for an offer's `identification_keys`: an attribute of the contact
/// with this value (`account_no`, `12345`), and where routing got it (`"entered in the IVR"`,
/// or empty). Keys are tried in order, before the number or chat identity.
pub fn attribute_key(
    key: impl Into<String>,
    value: impl Into<String>,
    source: impl Into<String>,
) -> pb::IdentificationKey {
    pb::IdentificationKey {
        key: Some(pb::identification_key::Key::Attribute(pb::Attribute {
            key: key.into(),
            value: value.into(),
        })),
        source: source.into(),
    }
}

/// An identification key: an e-mail address of the contact (see [`attribute_key`]).
pub fn email_key(address: impl Into<String>, source: impl Into<String>) -> pb::IdentificationKey {
    pb::IdentificationKey {
        key: Some(pb::identification_key::Key::Email(address.into())),
        source: source.into(),
    }
}

/// An identification key: a contact id routing already knows (see [`attribute_key`]).
pub fn contact_key(contact_id: i64, source: impl Into<String>) -> pb::IdentificationKey {
    pb::IdentificationKey {
        key: Some(pb::identification_key::Key::ContactId(contact_id)),
        source: source.into(),
    }
}

/// An inbound chat offer from a messaging identity to `agent_user_id`.
pub fn chat(
    interaction_id: impl Into<String>,
    protocol: impl Into<String>,
    external_user_id: impl Into<String>,
    display_name: impl Into<String>,
    agent_user_id: i64,
) -> pb::OfferInteractionRequest {
    pb::OfferInteractionRequest {
        interaction_id: interaction_id.into(),
        kind: pb::InteractionKind::Chat as i32,
        direction: pb::InteractionDirection::Inbound as i32,
        destination: Some(pb::ClientDestination {
            destination: Some(pb::client_destination::Destination::Chat(
                pb::ChatIdentity {
                    protocol: protocol.into(),
                    external_user_id: external_user_id.into(),
                    display_name: display_name.into(),
                },
            )),
        }),
        agent_user_id,
        ..Default::default()
    }
}

/// The direction of an interaction.
pub use pb::InteractionDirection as Direction;
/// The state of an interaction.
pub use pb::InteractionState as State;

impl Client {
    /// Offers an interaction from a raw request (routing, `interactions.route`);
    /// identification runs at once. Retried when it may help: the interaction id makes an
    /// offer idempotent. See [`Client::offer_call`] and [`Client::offer_chat`].
    pub async fn offer_interaction(
        &self,
        request: pb::OfferInteractionRequest,
    ) -> Result<pb::OfferInteractionResponse, SdkError> {
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.interactions();
                let request = request.clone();
                async move { stub.offer_interaction(request).await }
            })
            .await?
            .into_inner())
    }

    /// Starts the offer of an inbound call from `number` (as the network delivered it) to
    /// `agent_user_id`; `.await` sends it.
    ///
    /// ```no_run
    /// # async fn demo(routing: client_info_sdk::Client) -> Result<(), client_info_sdk::SdkError> {
    /// let offered = routing
    ///     .offer_call("call-1", "+44 7400 123456", 7)
    ///     .queue("q1", "Support")
    ///     .member("m1", "Tier 2, French")
    ///     .variable("lang", "fr")
    ///     .await?;
    /// println!("{:?}", offered.identification);
    /// # Ok(()) }
    /// ```
    pub fn offer_call(
        &self,
        interaction_id: impl Into<String>,
        number: impl Into<String>,
        agent_user_id: i64,
    ) -> Offer {
        Offer {
            client: self.clone(),
            options: CallOptions::default(),
            request: call(interaction_id, number, agent_user_id),
        }
    }

    /// Starts the offer of an inbound chat from a messaging identity to `agent_user_id`;
    /// `.await` sends it.
    pub fn offer_chat(
        &self,
        interaction_id: impl Into<String>,
        protocol: impl Into<String>,
        external_user_id: impl Into<String>,
        display_name: impl Into<String>,
        agent_user_id: i64,
    ) -> Offer {
        Offer {
            client: self.clone(),
            options: CallOptions::default(),
            request: chat(
                interaction_id,
                protocol,
                external_user_id,
                display_name,
                agent_user_id,
            ),
        }
    }

    /// Records that the agent answered. Never retried (a second accept is refused).
    pub async fn accept_interaction(
        &self,
        interaction_id: impl Into<String>,
        agent_user_id: i64,
    ) -> Result<State, SdkError> {
        let interaction_id = interaction_id.into();
        let r = self
            .run(Idempotent::No, || {
                let mut stub = self.interactions();
                let request = pb::AcceptInteractionRequest {
                    interaction_id: interaction_id.clone(),
                    agent_user_id,
                };
                async move { stub.accept_interaction(request).await }
            })
            .await?;
        Ok(r.into_inner().state())
    }

    /// Records that the interaction ended. Never retried.
    pub async fn close_interaction(
        &self,
        interaction_id: impl Into<String>,
    ) -> Result<State, SdkError> {
        let interaction_id = interaction_id.into();
        let r = self
            .run(Idempotent::No, || {
                let mut stub = self.interactions();
                let request = pb::CloseInteractionRequest {
                    interaction_id: interaction_id.clone(),
                };
                async move { stub.close_interaction(request).await }
            })
            .await?;
        Ok(r.into_inner().state())
    }

    /// The calling agent's panel for an interaction, with the first page of candidates.
    pub async fn get_client_info(
        &self,
        interaction_id: impl Into<String>,
    ) -> Result<pb::ClientInfoPanel, SdkError> {
        let r = self.get_client_info_page(interaction_id, 0, "").await?;
        r.panel
            .ok_or_else(|| SdkError::Other(tonic::Status::internal("response without a panel")))
    }

    /// The panel with a given page of candidates (`page_size` 0: default 20).
    pub async fn get_client_info_page(
        &self,
        interaction_id: impl Into<String>,
        page_size: i32,
        page_token: impl Into<String>,
    ) -> Result<pb::GetClientInfoResponse, SdkError> {
        let request = pb::GetClientInfoRequest {
            interaction_id: interaction_id.into(),
            candidate_page_size: page_size,
            candidate_page_token: page_token.into(),
        };
        Ok(self
            .run(Idempotent::Yes, || {
                let mut stub = self.client_info();
                let request = request.clone();
                async move { stub.get_client_info(request).await }
            })
            .await?
            .into_inner())
    }
}

/// An offer; see [`Client::offer_call`]. `.await` sends it.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until awaited"]
pub struct Offer {
    client: Client,
    options: CallOptions,
    request: pb::OfferInteractionRequest,
}

call_options!(Offer);
into_future!(Offer => pb::OfferInteractionResponse);

impl Offer {
    /// Inbound (the default) or outbound.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.request.direction = direction as i32;
        self
    }

    /// The caller withheld the number (identification is skipped).
    pub fn hidden_number(mut self) -> Self {
        if let Some(pb::ClientDestination {
            destination: Some(pb::client_destination::Destination::Call(c)),
        }) = &mut self.request.destination
        {
            c.hidden = true;
        }
        self
    }

    /// The queue it came from.
    pub fn queue(mut self, id: impl Into<String>, name: impl Into<String>) -> Self {
        self.request.queue = Some(pb::Queue {
            id: id.into(),
            name: name.into(),
        });
        self
    }

    /// The queue member and its description (shown to the agent).
    pub fn member(mut self, id: impl Into<String>, description: impl Into<String>) -> Self {
        self.request.member = Some(pb::QueueMember {
            id: id.into(),
            description: description.into(),
        });
        self
    }

    /// Adds a call variable (shown in order).
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.variables.push(pb::Variable {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds an identification key (see [`attribute_key`], [`email_key`], [`contact_key`]):
    /// keys are tried in the order added, before the number or chat identity.
    pub fn identification_key(mut self, key: pb::IdentificationKey) -> Self {
        self.request.identification_keys.push(key);
        self
    }

    /// When it happened (default: now).
    pub fn occurred_at(mut self, at: std::time::SystemTime) -> Self {
        self.request.occurred_at = Some(prost_types::Timestamp::from(at));
        self
    }

    /// The request as built.
    pub fn into_request(self) -> pb::OfferInteractionRequest {
        self.request
    }

    /// Sends it (the same as `.await`); retried when it may help.
    pub async fn send(self) -> Result<pb::OfferInteractionResponse, SdkError> {
        self.options.check()?;
        Ok(self
            .client
            .run(Idempotent::Yes, || {
                let mut stub = self.client.interactions();
                let request = self.options.apply(self.request.clone());
                async move { stub.offer_interaction(request).await }
            })
            .await?
            .into_inner())
    }
}
