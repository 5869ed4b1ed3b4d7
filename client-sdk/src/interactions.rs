//! Interactions (routing side) and the Client info panel (agent side).

use client_info_proto::pb;

use crate::client::Client;
use crate::error::SdkError;

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

impl Client {
    /// Offers an interaction (routing, `interactions.route`); identification runs at once.
    pub async fn offer_interaction(
        &self,
        request: pb::OfferInteractionRequest,
    ) -> Result<pb::OfferInteractionResponse, SdkError> {
        Ok(self
            .interactions()
            .offer_interaction(request)
            .await?
            .into_inner())
    }

    /// Records that the agent answered.
    pub async fn accept_interaction(
        &self,
        interaction_id: impl Into<String>,
        agent_user_id: i64,
    ) -> Result<pb::InteractionState, SdkError> {
        let r = self
            .interactions()
            .accept_interaction(pb::AcceptInteractionRequest {
                interaction_id: interaction_id.into(),
                agent_user_id,
            })
            .await?;
        Ok(r.into_inner().state())
    }

    /// Records that the interaction ended.
    pub async fn close_interaction(
        &self,
        interaction_id: impl Into<String>,
    ) -> Result<pb::InteractionState, SdkError> {
        let r = self
            .interactions()
            .close_interaction(pb::CloseInteractionRequest {
                interaction_id: interaction_id.into(),
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
        Ok(self
            .client_info()
            .get_client_info(pb::GetClientInfoRequest {
                interaction_id: interaction_id.into(),
                candidate_page_size: page_size,
                candidate_page_token: page_token.into(),
            })
            .await?
            .into_inner())
    }
}
