//! Merging duplicate contacts: which values the survivor keeps, how identification candidates
//! collapse onto it, and what an undo gives back. Pure; the statements live in `db::merge`.

use std::collections::BTreeMap;

use super::contact::{Attribute, ContactCard, MAX_ATTRIBUTES, MAX_LABELS};
use super::identify::{Candidate, Outcome};
use super::ids::{ContactId, UserId};

/// Most contacts in one merge, the survivor included.
pub const MAX_MERGE_CONTACTS: usize = 10;

/// How similar two normalised names must be (pg_trgm `similarity`, 0 to 1) to count as
/// near-identical for FindDuplicates: "ann lee" and "anne lee" are 0.7, "john smith" and
/// "jon smith" 0.62.
pub const NAME_SIMILARITY_THRESHOLD: f64 = 0.6;

/// A contact of a merge, the version the caller saw, and the request field naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The contact.
    pub contact: ContactId,
    /// The version the caller last saw.
    pub expected_version: i64,
    /// The request field that names it (for errors), for example `merged[1].contact_id`.
    pub field: String,
}

/// Whose value the survivor keeps, field by field (`None`: its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSources {
    /// Display name.
    pub display_name: Option<ContactId>,
    /// Description.
    pub description: Option<ContactId>,
    /// Time zone.
    pub time_zone: Option<ContactId>,
    /// Owner.
    pub owner: Option<ContactId>,
    /// Attributes by key.
    pub attributes: Vec<(String, ContactId)>,
}

/// The survivor's fields after a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedFields {
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Time zone.
    pub time_zone: String,
    /// Owner.
    pub owner: UserId,
    /// Attributes, sorted by key.
    pub attributes: Vec<Attribute>,
    /// Labels, sorted.
    pub labels: Vec<String>,
}

/// The survivor's fields after merging `merged` into `survivor` (cards in request order): its
/// own scalar fields unless `sources` names another contact's; the union of labels; the union
/// of attribute keys, each with the survivor's value, else the first merged contact's that has
/// it, unless `sources` names a contact (one without the key removes it). Fails when the result
/// would exceed a contact's limits.
pub fn merged_fields(
    survivor: &ContactCard,
    merged: &[ContactCard],
    sources: &FieldSources,
) -> Result<MergedFields, String> {
    let card = |id: Option<ContactId>| {
        id.and_then(|id| std::iter::once(survivor).chain(merged).find(|c| c.id == id))
            .unwrap_or(survivor)
    };
    let mut attributes: BTreeMap<String, String> = BTreeMap::new();
    for c in std::iter::once(survivor).chain(merged) {
        for a in &c.attributes {
            attributes
                .entry(a.key.clone())
                .or_insert_with(|| a.value.clone());
        }
    }
    for (key, from) in &sources.attributes {
        match card(Some(*from)).attributes.iter().find(|a| &a.key == key) {
            Some(a) => attributes.insert(key.clone(), a.value.clone()),
            None => attributes.remove(key),
        };
    }
    let mut labels: Vec<String> = std::iter::once(survivor)
        .chain(merged)
        .flat_map(|c| c.labels.iter().cloned())
        .collect();
    labels.sort();
    labels.dedup();
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "the merged contact would have {} labels (at most {MAX_LABELS})",
            labels.len()
        ));
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "the merged contact would have {} attributes (at most {MAX_ATTRIBUTES})",
            attributes.len()
        ));
    }
    Ok(MergedFields {
        display_name: card(sources.display_name).display_name.clone(),
        description: card(sources.description).description.clone(),
        time_zone: card(sources.time_zone).time_zone.clone(),
        owner: card(sources.owner).owner.id,
        attributes: attributes
            .into_iter()
            .map(|(key, value)| Attribute { key, value })
            .collect(),
        labels,
    })
}

/// An interaction's candidates after a merge: each merged contact is replaced by the survivor,
/// and the survivor appears once, where the first of them stood, with every match of them all
/// (exact when any was). `None` when nothing changes.
pub fn merged_candidates(
    candidates: &[Candidate],
    merged: &[ContactId],
    survivor: ContactId,
) -> Option<Vec<Candidate>> {
    let folds =
        |c: &Candidate| c.contact_id == survivor.0 || merged.iter().any(|m| m.0 == c.contact_id);
    if !candidates
        .iter()
        .any(|c| merged.iter().any(|m| m.0 == c.contact_id))
    {
        return None;
    }
    let mut out: Vec<Candidate> = Vec::with_capacity(candidates.len());
    let mut folded: Option<usize> = None;
    for c in candidates {
        if !folds(c) {
            out.push(c.clone());
            continue;
        }
        match folded {
            None => {
                folded = Some(out.len());
                out.push(Candidate {
                    contact_id: survivor.0,
                    ..c.clone()
                });
            }
            Some(i) => {
                let s = &mut out[i];
                s.exact |= c.exact;
                for m in &c.matches {
                    if !s.matches.contains(m) {
                        s.matches.push(m.clone());
                    }
                }
                s.last_active_at = s.last_active_at.max(c.last_active_at);
            }
        }
    }
    Some(out)
}

/// The outcome and its reason once a merge left `candidates`: identified when one is left,
/// otherwise as it was.
pub fn outcome_after_merge(
    outcome: Outcome,
    reason: &str,
    candidates: &[Candidate],
) -> (Outcome, String) {
    match (outcome, candidates.len()) {
        (Outcome::Ambiguous, 1) => (
            Outcome::Identified,
            "one contact: the candidates were merged".to_owned(),
        ),
        (Outcome::Ambiguous, n) => (Outcome::Ambiguous, format!("{n} contacts: after a merge")),
        _ => (outcome, reason.to_owned()),
    }
}

/// What an undo does to one field of the survivor: the value before the merge comes back only
/// when the merge changed the field and nobody changed it since.
pub fn reverted<T: PartialEq + Clone>(before: &T, after_merge: &T, now: &T) -> Option<T> {
    (before != after_merge && now == after_merge).then(|| before.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::UserRef;
    use crate::domain::identify::{CandidateMatch, LinkKind, MatchRule};
    use chrono::{DateTime, Utc};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).expect("time")
    }

    fn card(id: i64, name: &str, attrs: &[(&str, &str)], labels: &[&str]) -> ContactCard {
        let user = UserRef {
            id: UserId(id * 10),
            name: String::new(),
        };
        ContactCard {
            id: ContactId(id),
            version: 1,
            display_name: name.into(),
            description: format!("about {id}"),
            time_zone: String::new(),
            owner: user.clone(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            attributes: attrs
                .iter()
                .map(|(k, v)| Attribute {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            phones: vec![],
            emails: vec![],
            channels: vec![],
            created_at: at(0),
            created_by: user.clone(),
            updated_at: at(0),
            updated_by: user,
        }
    }

    #[test]
    fn the_survivor_keeps_its_values_unless_a_source_is_named() {
        let s = card(1, "Ann", &[("tier", "gold")], &["VIP"]);
        let m = card(
            2,
            "Ann Lee",
            &[("tier", "silver"), ("crm_id", "C2")],
            &["Retail", "VIP"],
        );
        let f = merged_fields(&s, std::slice::from_ref(&m), &FieldSources::default()).expect("ok");
        assert_eq!(f.display_name, "Ann");
        assert_eq!(f.description, "about 1");
        assert_eq!(f.owner, UserId(10));
        assert_eq!(f.labels, ["Retail", "VIP"]);
        let attrs: Vec<_> = f
            .attributes
            .iter()
            .map(|a| (a.key.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(attrs, [("crm_id", "C2"), ("tier", "gold")]);

        let sources = FieldSources {
            display_name: Some(ContactId(2)),
            owner: Some(ContactId(2)),
            attributes: vec![
                ("tier".into(), ContactId(2)),
                ("crm_id".into(), ContactId(1)),
            ],
            ..FieldSources::default()
        };
        let f = merged_fields(&s, std::slice::from_ref(&m), &sources).expect("ok");
        assert_eq!((f.display_name.as_str(), f.owner), ("Ann Lee", UserId(20)));
        let attrs: Vec<_> = f
            .attributes
            .iter()
            .map(|a| (a.key.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            attrs,
            [("tier", "silver")],
            "a source without the key removes it"
        );
    }

    #[test]
    fn a_merge_that_exceeds_the_limits_is_refused() {
        let labels: Vec<String> = (0..30).map(|i| format!("a{i}")).collect();
        let more: Vec<String> = (0..30).map(|i| format!("b{i}")).collect();
        let a = card(
            1,
            "A",
            &[],
            &labels.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let b = card(
            2,
            "B",
            &[],
            &more.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let e = merged_fields(&a, &[b], &FieldSources::default()).expect_err("60 labels");
        assert!(e.contains("60 labels"), "{e}");
    }

    fn cand(id: i64, exact: bool, link: i64, active: i64) -> Candidate {
        Candidate {
            contact_id: id,
            exact,
            matches: vec![CandidateMatch {
                rule: if exact {
                    MatchRule::E164
                } else {
                    MatchRule::LastDigits
                },
                kind: LinkKind::Phone,
                link_id: link,
                key: None,
            }],
            last_active_at: at(active),
        }
    }

    #[test]
    fn candidates_fold_onto_the_survivor_where_the_first_stood() {
        let before = vec![
            cand(7, true, 70, 5),
            cand(3, false, 30, 9),
            cand(2, true, 20, 1),
        ];
        let after = merged_candidates(&before, &[ContactId(2), ContactId(7)], ContactId(1))
            .expect("changed");
        assert_eq!(after.len(), 2);
        assert_eq!((after[0].contact_id, after[0].exact), (1, true));
        assert_eq!(after[0].matches.len(), 2);
        assert_eq!(after[0].last_active_at, at(5));
        assert_eq!(after[1].contact_id, 3);
        assert!(merged_candidates(&before, &[ContactId(9)], ContactId(1)).is_none());
        let (o, r) = outcome_after_merge(Outcome::Ambiguous, "3 contacts", &after[..1]);
        assert_eq!(o, Outcome::Identified, "{r}");
        let (o, _) = outcome_after_merge(Outcome::Identified, "one", &after[..1]);
        assert_eq!(o, Outcome::Identified);
    }

    #[test]
    fn an_undo_gives_back_only_what_nobody_changed_since() {
        assert_eq!(reverted(&"a", &"b", &"b"), Some("a"));
        assert_eq!(reverted(&"a", &"b", &"c"), None, "changed since the merge");
        assert_eq!(
            reverted(&"a", &"a", &"a"),
            None,
            "the merge did not change it"
        );
    }
}
