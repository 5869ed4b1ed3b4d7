//! Duplicate contacts: merge, undo, the errors of both, and their races with relink, update,
//! select and other merges.

use std::time::Duration;

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::interactions::{call, chat};
use client_info_sdk::watch::WatchOptions;
use client_info_sdk::{Client, SdkError, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, Actor, TestApp, expect_code, expect_invalid};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use tokio_stream::StreamExt as _;
use tonic::Code;

const AGENT: &[Permission] = &[Permission::InteractionsHandle, Permission::ContactsRead];

type Events =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AgentEvent, SdkError>> + Send>>;

struct World {
    app: TestApp,
    crm: Actor,
    routing: Actor,
    agent: Actor,
}

async fn world_on(app: TestApp) -> World {
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app.actor(d, "Alice", AGENT).await;
    World {
        app,
        crm,
        routing,
        agent,
    }
}

async fn world() -> World {
    world_on(TestApp::start().await).await
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl World {
    /// The agent's session stream once it is open (its snapshot arrived): what is committed
    /// after this returns reaches it.
    async fn watching(&self) -> Events {
        let mut events: Events = Box::pin(self.agent.client.watch_session(WatchOptions::default()));
        let first = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("snapshot")
            .expect("stream")
            .expect("ok");
        assert!(matches!(
            first.event,
            Some(pb::agent_event::Event::Snapshot(_))
        ));
        events
    }

    async fn live(&self, req: pb::OfferInteractionRequest) {
        let id = req.interaction_id.clone();
        self.routing
            .client
            .offer_interaction(req)
            .await
            .expect("offer");
        self.routing
            .client
            .accept_interaction(id, self.agent.user.0)
            .await
            .expect("accept");
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut conn = self.app.db().await;
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .await
            .expect("count")
            .n
    }

    /// A live chat from Anne's identity, bound to `contact`.
    async fn chat_bound_to(&self, iid: &str, contact: &pb::Contact) {
        self.live(chat(iid, "telegram", "tg-anne", "Anne", self.agent.user.0))
            .await;
        self.agent
            .client
            .select_contact(iid, contact.id)
            .await
            .expect("select");
    }

    /// Offers a call from `number` and returns its candidates' ids.
    async fn identify_call(&self, iid: &str, number: &str) -> Vec<Option<i64>> {
        self.routing
            .client
            .offer_interaction(call(iid, number, self.agent.user.0))
            .await
            .expect("offer");
        candidate_ids(&self.agent.client.get_client_info(iid).await.expect("panel"))
    }

    /// Merges `merged` (at the versions given) into `survivor`.
    async fn merge(
        &self,
        survivor: &pb::Contact,
        merged: &[&pb::Contact],
    ) -> pb::MergeContactsResponse {
        merged
            .iter()
            .fold(
                self.crm.client.merge_into(survivor.id, survivor.version),
                |m, c| m.contact(c.id, c.version),
            )
            .await
            .expect("merge")
    }

    /// A contact created by the CRM.
    async fn make(&self, name: &str, comms: Vec<pb::CommunicationInput>) -> pb::Contact {
        contact(&self.crm.client, named(name, comms)).await
    }

    /// Makes a merge look `interval` old.
    async fn age(&self, merge: &pb::MergeContactsResponse, interval: &str) {
        self.sql(&format!(
            "UPDATE contact_merges SET merged_at = now() - interval '{interval}' WHERE id = {}",
            merge.merge_id
        ))
        .await;
    }

    async fn sql(&self, sql: &str) {
        self.app.db().await.batch_execute(sql).await.expect("sql");
    }
}

async fn contact(client: &Client, req: pb::CreateContactRequest) -> pb::Contact {
    client.create_contact(req).await.expect("create").0
}

fn named(name: &str, comms: Vec<pb::CommunicationInput>) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        display_name: name.into(),
        communications: comms,
        ..Default::default()
    }
}

fn attr(key: &str, value: &str) -> pb::Attribute {
    pb::Attribute {
        key: key.into(),
        value: value.into(),
    }
}

fn attrs(c: &pb::Contact) -> Vec<(String, String)> {
    c.attributes
        .iter()
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect()
}

fn e164s(c: &pb::Contact) -> Vec<String> {
    let mut v: Vec<String> = c.phones.iter().map(|p| p.e164.clone()).collect();
    v.sort();
    v
}

fn candidate_ids(panel: &pb::ClientInfoPanel) -> Vec<Option<i64>> {
    panel
        .candidates
        .iter()
        .map(|c| view_id(&c.contact))
        .collect()
}

fn view_id(v: &Option<pb::ContactView>) -> Option<i64> {
    match v.as_ref()?.view.as_ref()? {
        pb::contact_view::View::Contact(c) => Some(c.id),
        pb::contact_view::View::Summary(s) => Some(s.id),
    }
}

/// Ann (the survivor) and Anne (her duplicate): one shared number, and what each alone has.
async fn ann_and_anne(w: &World) -> (pb::Contact, pb::Contact) {
    let ann = contact(
        &w.crm.client,
        pb::CreateContactRequest {
            display_name: "Ann".into(),
            description: "from the web form".into(),
            labels: vec!["VIP".into()],
            attributes: vec![attr("tier", "gold")],
            communications: vec![phone("07400 111111"), email("ann@example.com")],
            ..Default::default()
        },
    )
    .await;
    let anne = contact(
        &w.crm.client,
        pb::CreateContactRequest {
            display_name: "Anne Lee".into(),
            description: "imported".into(),
            time_zone: "Europe/London".into(),
            labels: vec!["Retail".into(), "VIP".into()],
            attributes: vec![attr("tier", "silver"), attr("crm_id", "CRM-2")],
            communications: vec![
                phone("+44 7400 111111"),
                phone("07400 222222"),
                email("anne@example.org"),
                messaging("telegram", "tg-anne", "Anne"),
            ],
            ..Default::default()
        },
    )
    .await;
    (ann, anne)
}

#[tokio::test]
async fn a_merge_unions_communications_moves_history_and_hides_the_merged_contact() {
    let w = world().await;
    let (ann, anne) = ann_and_anne(&w).await;
    // A closed call bound to Anne, in her history.
    w.live(call("old-call", "07400 222222", w.agent.user.0))
        .await;
    w.agent
        .client
        .select_contact("old-call", anne.id)
        .await
        .expect("select");
    w.routing
        .client
        .close_interaction("old-call")
        .await
        .expect("close");

    let merged = w
        .crm
        .client
        .merge_into(ann.id, ann.version)
        .contact(anne.id, anne.version)
        .display_name_from(anne.id)
        .attribute_from("tier", anne.id)
        .await
        .expect("merge");
    let s = merged.survivor.clone().expect("survivor");
    assert_eq!(s.id, ann.id);
    assert_eq!(s.version, ann.version + 1);
    assert_eq!(s.display_name, "Anne Lee", "the name chosen");
    assert_eq!(s.description, "from the web form", "the survivor's own");
    assert_eq!(s.time_zone, "", "the survivor's own, though empty");
    assert_eq!(e164s(&s), ["+447400111111", "+447400222222"]);
    let mut mails: Vec<&str> = s.emails.iter().map(|e| e.normalized.as_str()).collect();
    mails.sort_unstable();
    assert_eq!(mails, ["ann@example.com", "anne@example.org"]);
    assert_eq!(s.messaging_channels.len(), 1);
    assert_eq!(
        s.messaging_channels[0].id, anne.messaging_channels[0].id,
        "link ids kept"
    );
    assert_eq!(s.labels, ["Retail", "VIP"]);
    assert_eq!(
        attrs(&s),
        [
            ("crm_id".to_owned(), "CRM-2".to_owned()),
            ("tier".to_owned(), "silver".to_owned())
        ]
    );

    // The merged contact is gone, and says where it went.
    let e = expect_code(w.crm.client.get_contact(anne.id).await, Code::NotFound);
    assert_eq!(e.reason(), Some("CONTACT_MERGED"));
    assert_eq!(e.metadata("merged_into"), Some(ann.id.to_string().as_str()));
    assert_eq!(
        e.metadata("merge_id"),
        Some(merged.merge_id.to_string().as_str())
    );
    let e = expect_code(
        w.crm
            .client
            .edit_contact(anne.id, anne.version)
            .description("x")
            .await,
        Code::NotFound,
    );
    assert_eq!(e.reason(), Some("CONTACT_MERGED"), "writes say it too");
    let e = expect_code(
        w.crm
            .client
            .list_contact_interactions(anne.id, 10, "")
            .await,
        Code::NotFound,
    );
    assert_eq!(e.reason(), Some("CONTACT_MERGED"));

    // Her history is the survivor's, with who and when.
    let history = w
        .crm
        .client
        .list_contact_interactions(ann.id, 10, "")
        .await
        .expect("history");
    let item = history
        .interactions
        .iter()
        .find(|i| i.interaction_id == "old-call")
        .expect("the call moved");
    assert_eq!(item.bound_by.as_ref().map(|u| u.id), Some(w.agent.user.0));
    assert!(item.bound_at.is_some());

    // Identification and search find only the survivor.
    assert_eq!(
        w.identify_call("new-call", "07400 222222").await,
        [Some(ann.id)]
    );
    w.routing
        .client
        .offer_interaction(chat(
            "new-chat",
            "telegram",
            "tg-anne",
            "Anne",
            w.agent.user.0,
        ))
        .await
        .expect("offer chat");
    let panel = w
        .agent
        .client
        .get_client_info("new-chat")
        .await
        .expect("panel");
    assert_eq!(
        panel.identification.as_ref().map(|i| i.outcome()),
        Some(pb::IdentificationOutcome::Identified)
    );
    let hits = w
        .crm
        .client
        .search_contacts(pb::SearchContactsRequest {
            destination: "07400 111111".into(),
            ..Default::default()
        })
        .await
        .expect("search");
    let ids: Vec<Option<i64>> = hits.hits.iter().map(|h| view_id(&h.contact)).collect();
    assert_eq!(ids, [Some(ann.id)]);
    let hits = w
        .crm
        .client
        .search_contacts(pb::SearchContactsRequest {
            name: "anne".into(),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(
        hits.hits
            .iter()
            .all(|h| view_id(&h.contact) != Some(anne.id)),
        "{hits:?}"
    );

    // One audit entry, on the survivor, with every contact's card before.
    let audit = w
        .crm
        .client
        .list_contact_audit(ann.id, 50, "")
        .await
        .expect("audit");
    let merges: Vec<&pb::AuditEntry> = audit
        .entries
        .iter()
        .filter(|e| e.action == "contact.merge")
        .collect();
    assert_eq!(merges.len(), 1);
    let before: serde_json::Value = serde_json::from_str(&merges[0].before_json).expect("json");
    let cards = before["contacts"].as_array().expect("cards");
    assert_eq!(cards.len(), 2);
    assert_eq!(cards[1]["id"], anne.id);
    assert_eq!(cards[1]["display_name"], "Anne Lee");
    assert_eq!(cards[1]["phones"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        w.count("SELECT count(*) AS n FROM audit_log WHERE action = 'contact.merge'")
            .await,
        1
    );
}

#[tokio::test]
async fn open_interactions_show_the_survivor_and_their_agents_are_told() {
    let w = world().await;
    let (ann, anne) = ann_and_anne(&w).await;
    // The shared number: AMBIGUOUS between the two halves of one client.
    w.live(call("ringing", "07400 111111", w.agent.user.0))
        .await;
    let panel = w
        .agent
        .client
        .get_client_info("ringing")
        .await
        .expect("panel");
    assert_eq!(
        panel.identification.as_ref().map(|i| i.outcome()),
        Some(pb::IdentificationOutcome::Ambiguous)
    );
    // And a chat bound to Anne.
    w.chat_bound_to("chatting", &anne).await;

    let mut events = w.watching().await;

    let merged = w.merge(&ann, &[&anne]).await;
    let mut got_merged = None;
    while got_merged.is_none() {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event")
            .expect("stream")
            .expect("ok");
        if let Some(pb::agent_event::Event::ContactMerged(m)) = e.event {
            got_merged = Some(m);
        }
    }
    let m = got_merged.expect("merged");
    assert_eq!(m.merge_id, merged.merge_id);
    assert_eq!(m.merged_contact_ids, [anne.id]);
    assert_eq!(view_id(&m.survivor), Some(ann.id));
    let mut ids = m.interaction_ids.clone();
    ids.sort();
    assert_eq!(ids, ["chatting", "ringing"]);

    let panel = w
        .agent
        .client
        .get_client_info("ringing")
        .await
        .expect("panel");
    assert_eq!(
        panel.identification.as_ref().map(|i| i.outcome()),
        Some(pb::IdentificationOutcome::Identified),
        "{panel:?}"
    );
    let ids: Vec<Option<i64>> = panel
        .candidates
        .iter()
        .map(|c| view_id(&c.contact))
        .collect();
    assert_eq!(ids, [Some(ann.id)]);
    let panel = w
        .agent
        .client
        .get_client_info("chatting")
        .await
        .expect("panel");
    assert_eq!(view_id(&panel.bound_contact), Some(ann.id));
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) AS n FROM interaction_bindings WHERE contact_id = {}",
            anne.id
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn bad_merges_name_the_field() {
    let w = world().await;
    let (ann, anne) = ann_and_anne(&w).await;
    let c = &w.crm.client;
    let cv = |id: i64, v: i64| pb::ContactVersion {
        contact_id: id,
        expected_version: v,
    };
    let req = |merged: Vec<pb::ContactVersion>| pb::MergeContactsRequest {
        survivor: Some(cv(ann.id, ann.version)),
        merged,
        field_sources: None,
    };
    expect_invalid(
        c.merge_contacts(req(vec![cv(ann.id, ann.version)])).await,
        "merged[0].contact_id",
    );
    expect_invalid(c.merge_contacts(req(vec![])).await, "merged");
    expect_invalid(
        c.merge_contacts(req((1..=10).map(|i| cv(anne.id + i, 1)).collect()))
            .await,
        "merged",
    );
    expect_invalid(
        c.merge_contacts(req(vec![cv(anne.id, 1), cv(anne.id, 1)]))
            .await,
        "merged[1].contact_id",
    );
    expect_invalid(
        c.merge_contacts(req(vec![cv(anne.id, 0)])).await,
        "merged[0].expected_version",
    );
    expect_invalid(
        c.merge_contacts(pb::MergeContactsRequest {
            survivor: None,
            merged: vec![cv(anne.id, 1)],
            field_sources: None,
        })
        .await,
        "survivor",
    );
    let e = expect_invalid(
        c.merge_into(ann.id, ann.version)
            .contact(anne.id, anne.version)
            .display_name_from(anne.id + 1000)
            .attribute_from("tier", anne.id + 1000)
            .attribute_from("bad key", anne.id)
            .await,
        "field_sources.display_name_from",
    );
    let fields: Vec<&str> = e.violations().iter().map(|v| v.field.as_str()).collect();
    assert!(
        fields.contains(&"field_sources.attributes[0].contact_id")
            && fields.contains(&"field_sources.attributes[1].key"),
        "every violation at once: {fields:?}"
    );

    // Unknown, and another domain's: NOT_FOUND naming the field.
    let e = expect_code(
        c.merge_into(ann.id, ann.version)
            .contact(anne.id, anne.version)
            .contact(anne.id + 1000, 1)
            .await,
        Code::NotFound,
    );
    assert_eq!(e.reason(), Some("CONTACT_NOT_FOUND"));
    assert_eq!(e.metadata("field"), Some("merged[1].contact_id"));
    let other = w.app.domain("other", "GB").await;
    let stranger = w.app.actor(other, "Stranger", ALL).await;
    let theirs = contact(&stranger.client, named("Theirs", vec![])).await;
    let e = expect_code(
        c.merge_into(ann.id, ann.version)
            .contact(theirs.id, theirs.version)
            .await,
        Code::NotFound,
    );
    assert_eq!(e.metadata("field"), Some("merged[0].contact_id"));
    let e = expect_code(
        c.merge_into(theirs.id, theirs.version)
            .contact(anne.id, anne.version)
            .await,
        Code::NotFound,
    );
    assert_eq!(e.metadata("field"), Some("survivor.contact_id"));

    // A stale version is ABORTED, and nothing changed.
    let e = expect_code(
        c.merge_into(ann.id, ann.version)
            .contact(anne.id, anne.version + 1)
            .await,
        Code::Aborted,
    );
    assert_eq!(e.reason(), Some("CONTACT_VERSION_MISMATCH"));
    assert_eq!(e.metadata("field"), Some("merged[0].contact_id"));
    assert_eq!(
        c.get_contact(anne.id).await.expect("still there").version,
        anne.version
    );

    // Permissions.
    expect_code(
        w.agent
            .client
            .merge_into(ann.id, ann.version)
            .contact(anne.id, anne.version)
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        w.routing
            .client
            .find_duplicates(pb::FindDuplicatesRequest::default())
            .await,
        Code::PermissionDenied,
    );

    // A merged contact cannot be merged again: it is gone, and the answer says where.
    let merged = w.merge(&ann, &[&anne]).await;
    let again = c.get_contact(ann.id).await.expect("survivor");
    let e = expect_code(
        c.merge_into(again.id, again.version)
            .contact(anne.id, anne.version)
            .await,
        Code::NotFound,
    );
    assert_eq!(e.reason(), Some("CONTACT_MERGED"));
    assert_eq!(e.metadata("field"), Some("merged[0].contact_id"));
    assert_eq!(
        e.metadata("merge_id"),
        Some(merged.merge_id.to_string().as_str())
    );
}

#[tokio::test]
async fn an_undo_restores_the_merged_contacts_as_they_were_and_keeps_later_changes() {
    let w = world().await;
    let (ann, anne) = ann_and_anne(&w).await;
    w.chat_bound_to("chatting", &anne).await;
    let anne_before = w.crm.client.get_contact(anne.id).await.expect("card");
    let merged = w
        .crm
        .client
        .merge_into(ann.id, ann.version)
        .contact(anne.id, anne_before.version)
        .display_name_from(anne.id)
        .time_zone_from(anne.id)
        .await
        .expect("merge");
    let s = merged.survivor.expect("survivor");
    // A change on the survivor after the merge stays.
    let s = w
        .crm
        .client
        .edit_contact(s.id, s.version)
        .description("called back on Monday")
        .await
        .expect("edit");

    // The stream is open (its snapshot arrived) before the undo: what comes later reaches it.
    let mut events = w.watching().await;
    let undone = w
        .crm
        .client
        .unmerge_contacts(merged.merge_id, false)
        .await
        .expect("undo");
    assert!(undone.skipped.is_empty());
    // The agent of the chat that goes back to Anne is told, with both cards.
    let told = loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event")
            .expect("stream")
            .expect("ok");
        if let Some(pb::agent_event::Event::ContactUnmerged(u)) = e.event {
            break u;
        }
    };
    assert_eq!(told.merge_id, merged.merge_id);
    assert_eq!(told.interaction_ids, ["chatting"]);
    assert_eq!(view_id(&told.survivor), Some(ann.id));
    let restored_ids: Vec<Option<i64>> = told
        .restored
        .iter()
        .map(|v| view_id(&Some(v.clone())))
        .collect();
    assert_eq!(restored_ids, [Some(anne.id)]);
    let restored = &undone.restored[0];
    assert_eq!(restored.id, anne.id, "the same id");
    assert_eq!(restored.display_name, anne_before.display_name);
    assert_eq!(restored.description, anne_before.description);
    assert_eq!(restored.time_zone, anne_before.time_zone);
    assert_eq!(restored.labels, anne_before.labels);
    assert_eq!(attrs(restored), attrs(&anne_before));
    assert_eq!(
        restored.phones, anne_before.phones,
        "every phone, with its link id"
    );
    assert_eq!(restored.emails, anne_before.emails);
    assert_eq!(restored.messaging_channels, anne_before.messaging_channels);
    assert_eq!(restored.created_at, anne_before.created_at);
    assert!(restored.version > anne_before.version);
    assert_eq!(
        w.crm.client.get_contact(anne.id).await.expect("back").id,
        anne.id
    );

    let survivor = undone.survivor.expect("survivor");
    assert_eq!(survivor.id, ann.id);
    assert_eq!(
        survivor.display_name, "Ann",
        "the merge's choice is given back"
    );
    assert_eq!(survivor.time_zone, "");
    assert_eq!(
        survivor.description, "called back on Monday",
        "a later change stays"
    );
    assert_eq!(survivor.labels, ["VIP"]);
    assert_eq!(attrs(&survivor), [("tier".to_owned(), "gold".to_owned())]);
    assert_eq!(e164s(&survivor), ["+447400111111"], "its own number only");
    assert_eq!(survivor.emails.len(), 1);
    assert!(survivor.messaging_channels.is_empty());
    assert!(survivor.version > s.version);

    // History and the live chat are Anne's again; identification finds her.
    let history = w
        .crm
        .client
        .list_contact_interactions(anne.id, 10, "")
        .await
        .expect("history");
    assert_eq!(history.interactions.len(), 1);
    let panel = w
        .agent
        .client
        .get_client_info("chatting")
        .await
        .expect("panel");
    assert_eq!(view_id(&panel.bound_contact), Some(anne.id));
    assert_eq!(
        w.identify_call("after", "07400 222222").await,
        [Some(anne.id)]
    );
    for c in [ann.id, anne.id] {
        assert_eq!(
            w.count(&format!(
                "SELECT count(*) AS n FROM audit_log WHERE action = 'contact.unmerge' \
                 AND contact_id = {c}"
            ))
            .await,
            1
        );
    }

    // Undone once: a second undo says so.
    let e = expect_code(
        w.crm.client.unmerge_contacts(merged.merge_id, false).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason(), Some("MERGE_ALREADY_UNDONE"));
    assert!(e.metadata("undone_at").is_some());
}

#[tokio::test]
async fn what_cannot_go_back_is_listed_and_force_skips_it() {
    let w = world().await;
    let (ann, anne) = ann_and_anne(&w).await;
    let other = w.make("Other", vec![]).await;
    let merged = w.merge(&ann, &[&anne]).await;
    let s = merged.survivor.expect("survivor");
    // Since the merge: Anne's e-mail removed from the survivor, her chat identity moved on.
    let mail = s
        .emails
        .iter()
        .find(|e| e.normalized == "anne@example.org")
        .expect("moved");
    w.crm
        .client
        .unlink_communication(
            s.id,
            0,
            pb::unlink_communication_request::Communication::EmailId(mail.id),
        )
        .await
        .expect("unlink");
    w.crm
        .client
        .link_communication(other.id, messaging("telegram", "tg-anne", "Anne"))
        .relink()
        .await
        .expect("relink");

    let e = expect_code(
        w.crm.client.unmerge_contacts(merged.merge_id, false).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason(), Some("UNMERGE_CONFLICT"));
    let mut kinds: Vec<(&str, &str)> = e
        .preconditions()
        .iter()
        .map(|p| (p.kind.as_str(), p.subject.as_str()))
        .collect();
    kinds.sort_unstable();
    let email_subject = format!("contact/{}/emails/{}", anne.id, mail.id);
    let channel_subject = format!(
        "contact/{}/messaging_channels/{}",
        anne.id, anne.messaging_channels[0].id
    );
    assert_eq!(
        kinds,
        [
            ("COMMUNICATION_REMOVED", email_subject.as_str()),
            ("IDENTITY_HELD_BY_OTHER_CONTACT", channel_subject.as_str()),
        ]
    );
    expect_code(w.crm.client.get_contact(anne.id).await, Code::NotFound);

    let undone = w
        .crm
        .client
        .unmerge_contacts(merged.merge_id, true)
        .await
        .expect("forced");
    assert_eq!(undone.skipped.len(), 2);
    let held = undone
        .skipped
        .iter()
        .find(|c| c.kind() == pb::UnmergeConflictKind::HeldByOtherContact)
        .expect("held");
    assert_eq!(held.holder_contact_id, other.id);
    assert_eq!(held.contact_id, anne.id);
    let restored = &undone.restored[0];
    assert_eq!(e164s(restored), ["+447400111111", "+447400222222"]);
    assert!(
        restored.emails.is_empty(),
        "the removed e-mail stays removed"
    );
    assert!(restored.messaging_channels.is_empty());
    let other = w.crm.client.get_contact(other.id).await.expect("other");
    assert_eq!(other.messaging_channels.len(), 1, "one owner per identity");
    assert_eq!(
        w.count("SELECT count(*) AS n FROM contact_messaging_channels WHERE external_user_id = 'tg-anne'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_unknown_expired_or_orphaned_merge_cannot_be_undone() {
    let w = world_on(TestApp::start_with(|c| c.merge_retention = Duration::from_secs(3600)).await)
        .await;
    let c = &w.crm.client;
    expect_invalid(c.unmerge_contacts(0, false).await, "merge_id");
    let e = expect_code(c.unmerge_contacts(424_242, false).await, Code::NotFound);
    assert_eq!(e.reason(), Some("MERGE_NOT_FOUND"));
    assert_eq!(e.metadata("field"), Some("merge_id"));

    let (ann, anne) = ann_and_anne(&w).await;
    let merged = w.merge(&ann, &[&anne]).await;
    // Older than the configured window (an hour here).
    w.age(&merged, "61 minutes").await;
    let e = expect_code(
        c.unmerge_contacts(merged.merge_id, true).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason(), Some("MERGE_EXPIRED"));
    assert!(e.metadata("expired_at").is_some());

    // Another domain's merge is unknown here.
    let other = w.app.domain("other", "GB").await;
    let stranger = w.app.actor(other, "Stranger", ALL).await;
    let e = expect_code(
        stranger
            .client
            .unmerge_contacts(merged.merge_id, false)
            .await,
        Code::NotFound,
    );
    assert_eq!(e.reason(), Some("MERGE_NOT_FOUND"));

    // A survivor merged into another since: undo that merge first.
    let (b1, b2) = (w.make("B1", vec![]).await, w.make("B2", vec![]).await);
    let b3 = w.make("B3", vec![]).await;
    let first = w.merge(&b1, &[&b2]).await;
    let b1 = c.get_contact(b1.id).await.expect("b1");
    let second = w.merge(&b3, &[&b1]).await;
    let e = expect_code(
        c.unmerge_contacts(first.merge_id, true).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason(), Some("MERGE_SURVIVOR_GONE"));
    assert_eq!(e.metadata("merged_into"), Some(b3.id.to_string().as_str()));
    // A merge of a merge: the first contact now lives in the last survivor.
    let e = expect_code(c.get_contact(b2.id).await, Code::NotFound);
    assert_eq!(e.metadata("merged_into"), Some(b3.id.to_string().as_str()));
    c.unmerge_contacts(second.merge_id, false)
        .await
        .expect("undo the second");
    c.unmerge_contacts(first.merge_id, false)
        .await
        .expect("then the first");
    assert_eq!(c.get_contact(b2.id).await.expect("back").display_name, "B2");

    // A deleted survivor.
    let (d1, d2) = (w.make("D1", vec![]).await, w.make("D2", vec![]).await);
    let m = w.merge(&d1, &[&d2]).await;
    c.delete_contact(d1.id, 0).await.expect("delete");
    let e = expect_code(
        c.unmerge_contacts(m.merge_id, true).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason(), Some("MERGE_SURVIVOR_GONE"));
}

#[tokio::test]
async fn the_default_window_is_thirty_days() {
    let w = world().await;
    let (ann, anne) = ann_and_anne(&w).await;
    let merged = w.merge(&ann, &[&anne]).await;
    w.age(&merged, "29 days 23 hours").await;
    w.crm
        .client
        .unmerge_contacts(merged.merge_id, false)
        .await
        .expect("within 30 days");
    let ann = w.crm.client.get_contact(ann.id).await.expect("ann");
    let anne = w.crm.client.get_contact(anne.id).await.expect("anne");
    let merged = w.merge(&ann, &[&anne]).await;
    w.age(&merged, "30 days 1 minute").await;
    let e = expect_code(
        w.crm.client.unmerge_contacts(merged.merge_id, false).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason(), Some("MERGE_EXPIRED"));
}

// ---------------------------------------------------------------------------------------------
// Races

/// No error that says the server failed.
#[track_caller]
fn sane<T>(r: &Result<T, SdkError>, allowed: &[Code]) {
    if let Err(e) = r {
        assert!(
            allowed.contains(&e.code()),
            "unexpected {:?} ({:?}): {e}",
            e.code(),
            e.reason()
        );
    }
}

/// Every identity has one holder that exists, and nothing is bound to a contact that is gone.
async fn consistent(w: &World) {
    assert_eq!(
        w.count(
            "SELECT count(*) AS n FROM (SELECT domain_id, protocol, external_user_id \
             FROM contact_messaging_channels GROUP BY 1, 2, 3 HAVING count(*) > 1) x"
        )
        .await,
        0
    );
    for sql in [
        "SELECT count(*) AS n FROM contact_messaging_channels m \
         WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = m.contact_id)",
        "SELECT count(*) AS n FROM interactions i WHERE bound_contact_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = i.bound_contact_id)",
        "SELECT count(*) AS n FROM interaction_bindings b JOIN merged_contacts m \
         ON m.contact_id = b.contact_id",
        "SELECT count(*) AS n FROM interactions i JOIN merged_contacts m \
         ON m.contact_id = i.bound_contact_id",
        "SELECT count(*) AS n FROM merged_contacts m JOIN contacts c ON c.id = m.contact_id",
    ] {
        assert_eq!(w.count(sql).await, 0, "{sql}");
    }
}

#[tokio::test]
async fn a_merge_racing_a_relink_leaves_one_owner() {
    let w = world().await;
    for round in 0..6 {
        let id = format!("tg-race-{round}");
        let s = w.make("S", vec![]).await;
        let x = w.make("X", vec![messaging("telegram", &id, "X")]).await;
        let y = w.make("Y", vec![]).await;
        let (m, l) = tokio::join!(
            w.crm
                .client
                .merge_into(s.id, s.version)
                .contact(x.id, x.version),
            w.crm
                .client
                .link_communication(y.id, messaging("telegram", &id, "X"))
                .relink(),
        );
        sane(&m, &[Code::Aborted]);
        sane(&l, &[]);
        consistent(&w).await;
        let holders = w
            .count(&format!(
                "SELECT count(*) AS n FROM contact_messaging_channels \
                 WHERE external_user_id = '{id}' AND contact_id = {}",
                y.id
            ))
            .await;
        assert_eq!(holders, 1, "the relink won the identity in the end");
    }
}

#[tokio::test]
async fn a_merge_racing_an_update_of_the_merged_contact_is_one_or_the_other() {
    let w = world().await;
    for _ in 0..6 {
        let s = w.make("S", vec![]).await;
        let x = w.make("X", vec![phone("07400 333333")]).await;
        let (m, u) = tokio::join!(
            w.crm
                .client
                .merge_into(s.id, s.version)
                .contact(x.id, x.version),
            w.crm
                .client
                .edit_contact(x.id, x.version)
                .description("changed"),
        );
        sane(&m, &[Code::Aborted]);
        sane(&u, &[Code::NotFound]);
        match (&m, &u) {
            (Ok(_), Err(e)) => assert_eq!(e.reason(), Some("CONTACT_MERGED")),
            (Err(e), Ok(_)) => assert_eq!(e.reason(), Some("CONTACT_VERSION_MISMATCH")),
            other => panic!("exactly one wins: {other:?}"),
        }
        consistent(&w).await;
    }
}

#[tokio::test]
async fn a_merge_racing_a_select_of_the_merged_contact_never_binds_it() {
    let w = world().await;
    for round in 0..6 {
        let s = w.make("S", vec![]).await;
        let x = w.make("X", vec![]).await;
        let iid = format!("race-{round}");
        w.live(call(&iid, "07400 444444", w.agent.user.0)).await;
        let (m, sel) = tokio::join!(
            w.crm
                .client
                .merge_into(s.id, s.version)
                .contact(x.id, x.version),
            w.agent.client.select_contact(&iid, x.id),
        );
        sane(&m, &[]);
        sane(&sel, &[Code::NotFound]);
        if let Err(e) = &sel {
            assert_eq!(e.reason(), Some("CONTACT_MERGED"));
        }
        let panel = w.agent.client.get_client_info(&iid).await.expect("panel");
        let bound = view_id(&panel.bound_contact);
        assert!(
            bound.is_none() || bound == Some(s.id),
            "bound to {bound:?}, not to the merged contact"
        );
        assert_eq!(bound.is_some(), sel.is_ok());
        consistent(&w).await;
    }
}

#[tokio::test]
async fn overlapping_merges_are_one_after_the_other() {
    let w = world().await;
    for round in 0..6 {
        let id = format!("tg-overlap-{round}");
        let a = w.make("A", vec![]).await;
        let b = w.make("B", vec![messaging("telegram", &id, "B")]).await;
        let c = w.make("C", vec![phone("07400 555555")]).await;
        // a <- b and c <- b, and b <- c: every pair overlaps.
        let (m1, m2, m3) = tokio::join!(
            w.crm
                .client
                .merge_into(a.id, a.version)
                .contact(b.id, b.version),
            w.crm
                .client
                .merge_into(c.id, c.version)
                .contact(b.id, b.version),
            w.crm
                .client
                .merge_into(b.id, b.version)
                .contact(c.id, c.version),
        );
        for r in [&m1, &m2, &m3] {
            sane(r, &[Code::Aborted, Code::NotFound]);
        }
        let wins = [&m1, &m2, &m3].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{m1:?} {m2:?} {m3:?}");
        consistent(&w).await;
        assert_eq!(
            w.count(&format!(
                "SELECT count(*) AS n FROM contact_messaging_channels WHERE external_user_id = '{id}'"
            ))
            .await,
            1
        );
    }
}
