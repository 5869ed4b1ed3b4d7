//! `ClientInfoService` requests: a panel page, the opening of a session stream.

use client_info_proto::pb;

use super::{client_id, page_size};
use crate::app::client_info::{GetPanel, Watch};
use crate::error::{AllValid, Checked, Violations};

/// A candidate page token (`c<offset>`; empty for the first page).
fn offset_token(token: &str) -> Checked<usize> {
    if token.is_empty() {
        return Ok(0);
    }
    match token
        .strip_prefix('c')
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) if n > 0 => Ok(n),
        _ => Err(Violations::one(
            "candidate_page_token",
            "is not a token returned by GetClientInfo",
        )),
    }
}

/// The candidate page token that continues at `offset`.
pub fn next_offset_token(offset: Option<usize>) -> String {
    offset.map(|n| format!("c{n}")).unwrap_or_default()
}

/// GetClientInfo.
pub fn get_client_info(req: &pb::GetClientInfoRequest) -> Checked<GetPanel> {
    let (interaction, size, offset) = (
        client_id("interaction_id", &req.interaction_id),
        page_size("candidate_page_size", req.candidate_page_size),
        offset_token(&req.candidate_page_token),
    )
        .all_valid()?;
    Ok(GetPanel {
        interaction,
        offset,
        size,
    })
}

/// WatchAgentSession.
pub fn watch_agent_session(req: &pb::WatchAgentSessionRequest) -> Checked<Watch> {
    if req.resume_after < 0 {
        return Err(Violations::one("resume_after", "must not be negative"));
    }
    Ok(Watch {
        resume_after: req.resume_after,
    })
}
