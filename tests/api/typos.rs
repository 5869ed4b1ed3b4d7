//! Typo tolerance against a generated corpus (issue 29): every single-edit variant of each
//! word of 5 letters or more of the load harness's names, two-edit variants of the words of 9,
//! a full name with a typo in each word, and names in other scripts, with apostrophes and
//! hyphens. Each must rank the intended name first, unless another name's word is as close to
//! the variant (then either is right; those are counted apart).

use std::collections::{BTreeMap, BTreeSet};

use client_info_loadgen::data::{FIRST, LAST};
use client_info_sdk::{Client, pb};
use client_info_tests::{ALL, TestApp};
use futures_util::StreamExt as _;

const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz";

/// Every string one edit from `w` (deletion, swap of neighbours, substitution, insertion).
fn one_edit(w: &str, alphabet: &[char]) -> BTreeSet<String> {
    let c: Vec<char> = w.chars().collect();
    let mut out = BTreeSet::new();
    let s = |v: &[char]| v.iter().collect::<String>();
    for i in 0..c.len() {
        let mut v = c.clone();
        v.remove(i);
        out.insert(s(&v));
        if i + 1 < c.len() {
            let mut v = c.clone();
            v.swap(i, i + 1);
            out.insert(s(&v));
        }
        for &a in alphabet {
            let mut v = c.clone();
            v[i] = a;
            out.insert(s(&v));
        }
    }
    for i in 0..=c.len() {
        for &a in alphabet {
            let mut v = c.clone();
            v.insert(i, a);
            out.insert(s(&v));
        }
    }
    out.remove(w);
    out
}

/// Typos a word forgives (as the product documents: 1 from 5 characters, 2 from 9).
fn allowed(w: &str) -> usize {
    match w.chars().count() {
        n if n >= 9 => 2,
        n if n >= 5 => 1,
        _ => 0,
    }
}

/// True when a word other than `intended` could rightly rank first for `v`: it contains `v`
/// (a literal match), or is within its own typos of `v` and no farther than `intended`.
fn ambiguous(v: &str, intended: &str, vocabulary: &BTreeSet<String>) -> bool {
    let d = strsim::osa_distance(v, intended);
    vocabulary.iter().filter(|x| *x != intended).any(|x| {
        x.contains(v) || {
            let dx = strsim::osa_distance(v, x);
            dx <= allowed(x) && dx <= d
        }
    })
}

/// The names of the first hit of `query` (empty when none), normalised as the vocabulary is.
async fn first_hit(client: &Client, query: &str) -> Option<(i64, pb::FoundBy)> {
    let page = client
        .search_contacts(pb::SearchContactsRequest {
            name: query.into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("search");
    let hit = page.hits.first()?;
    let id = match hit.contact.as_ref()?.view.as_ref()? {
        pb::contact_view::View::Contact(c) => c.id,
        pb::contact_view::View::Summary(s) => s.id,
    };
    Some((id, hit.found_by.first()?.clone()))
}

struct Outcome {
    queries: usize,
    first: usize,
    ambiguous: usize,
    ambiguous_first: usize,
    missed: Vec<String>,
}

/// Runs `cases` (query, intended word, ambiguous) 8 at a time: the first hit must hold the
/// intended word unless the case is ambiguous.
async fn run(
    client: &Client,
    cases: Vec<(String, String, bool)>,
    words_of: &BTreeMap<i64, Vec<String>>,
) -> Outcome {
    let results: Vec<_> = futures_util::stream::iter(cases)
        .map(|(q, w, amb)| async move {
            let hit = first_hit(client, &q).await;
            let ok = hit
                .as_ref()
                .is_some_and(|(id, _)| words_of[id].contains(&w));
            (q, w, amb, ok)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut o = Outcome {
        queries: results.len(),
        first: 0,
        ambiguous: 0,
        ambiguous_first: 0,
        missed: Vec::new(),
    };
    for (q, w, amb, ok) in results {
        o.first += usize::from(ok);
        if amb {
            o.ambiguous += 1;
            o.ambiguous_first += usize::from(ok);
        } else if !ok {
            o.missed.push(format!("{q} (for {w})"));
        }
    }
    o
}

#[tokio::test]
async fn every_typo_of_the_harness_names_ranks_the_intended_name_first() {
    let app = TestApp::start().await;
    let d = app.domain("corpus", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let c = &crm.client;
    let mut names = Vec::new();
    for f in FIRST {
        for l in LAST {
            names.push(format!("{f} {l}"));
        }
    }
    futures_util::stream::iter(names.iter())
        .for_each_concurrent(8, |n| async move {
            c.create_contact(pb::CreateContactRequest {
                display_name: n.clone(),
                ..Default::default()
            })
            .await
            .expect("create");
        })
        .await;
    // The words of each contact and the vocabulary, normalised by the database.
    let mut db = app.db().await;
    let words_of = normalised_words(&mut db, d.0).await;
    let vocabulary: BTreeSet<String> = words_of.values().flatten().cloned().collect();
    let alphabet: Vec<char> = ALPHABET.chars().collect();

    let mut singles = Vec::new();
    let mut doubles = Vec::new();
    for w in vocabulary.iter().filter(|w| w.chars().count() >= 5) {
        for v in one_edit(w, &alphabet) {
            let amb = ambiguous(&v, w, &vocabulary);
            singles.push((v, w.clone(), amb));
        }
        if w.chars().count() >= 9 {
            // Two edits: every pair of deletions and swaps, and every third of the other
            // two-edit variants (a deterministic sample of some tens of thousands).
            let firsts = one_edit(w, &alphabet);
            let mut seen = BTreeSet::new();
            for (i, a) in firsts.iter().enumerate() {
                for (j, b) in one_edit(a, &alphabet).into_iter().enumerate() {
                    let cheap = b.chars().count() + 2 == w.chars().count()
                        || (b.chars().count() == w.chars().count()
                            && b.chars().zip(w.chars()).filter(|(x, y)| x != y).count() <= 4
                            && (i + j) % 97 == 0);
                    if cheap && strsim::osa_distance(&b, w) == 2 && seen.insert(b.clone()) {
                        let amb = ambiguous(&b, w, &vocabulary);
                        doubles.push((b, w.clone(), amb));
                    }
                }
            }
        }
    }
    let one = run(c, singles, &words_of).await;
    let two = run(c, doubles, &words_of).await;
    for (label, o) in [("one edit", &one), ("two edits", &two)] {
        eprintln!(
            "{label}: {} queries, intended name first in {} ({:.2} %); {} where another \
             word is as close (intended first in {})",
            o.queries,
            o.first,
            100.0 * o.first as f64 / o.queries.max(1) as f64,
            o.ambiguous,
            o.ambiguous_first
        );
        assert!(o.missed.is_empty(), "{label}: missed {:?}", o.missed);
        assert!(o.queries > o.ambiguous, "{label}: no unambiguous query");
    }
    assert!(one.queries > 10_000, "{} single edits", one.queries);
    assert!(two.queries > 500, "{} double edits", two.queries);

    // A full name with a typo in each word of 5 letters or more finds that contact first.
    let mut full = Vec::new();
    for (k, (id, words)) in words_of.iter().enumerate() {
        let mut amb = false;
        let typed: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if w.chars().count() < 5 {
                    return w.clone();
                }
                let edits: Vec<String> = one_edit(w, &alphabet).into_iter().collect();
                let v = edits[(k * 7 + i * 13) % edits.len()].clone();
                amb |= ambiguous(&v, w, &vocabulary);
                v
            })
            .collect();
        full.push((typed.join(" "), *id, amb));
    }
    let results: Vec<_> = futures_util::stream::iter(full)
        .map(
            |(q, id, amb)| async move { (first_hit(c, &q).await.map(|h| h.0) == Some(id), amb, q) },
        )
        .buffer_unordered(8)
        .collect()
        .await;
    let missed: Vec<&String> = results
        .iter()
        .filter(|(ok, amb, _)| !ok && !amb)
        .map(|r| &r.2)
        .collect();
    eprintln!(
        "full names with a typo in each long word: {} of {} first ({} with another name as close)",
        results.iter().filter(|r| r.0).count(),
        results.len(),
        results.iter().filter(|r| r.1).count()
    );
    assert!(missed.is_empty(), "full names missed: {missed:?}");

    // The reason says which word matched how.
    let (_, why) = first_hit(c, "amlia").await.expect("amlia");
    assert_eq!(why.explanation, "Amelia ~ amlia, 1 typo");
    assert!(!why.exact);
    let (_, why) = first_hit(c, "amelia smiht").await.expect("amelia smiht");
    assert_eq!(why.explanation, "Amelia; Smith ~ smiht, 1 typo");
    let (_, why) = first_hit(c, "schnieder").await.expect("schnieder");
    assert_eq!(why.explanation, "Schneider ~ schnieder, 1 typo");
    let (_, why) = first_hit(c, "shcnieder").await.expect("shcnieder");
    assert_eq!(why.explanation, "Schneider ~ shcnieder, 2 typos");
    // Oliver before Oliveira for "olivr" (one typo from Oliver; three from Oliveira).
    let (id, _) = first_hit(c, "olivr").await.expect("olivr");
    assert_eq!(words_of[&id][0], "oliver");
    // The literal bands keep their place: exact words before prefixes before typos.
    let (id, why) = first_hit(c, "amelia").await.expect("amelia");
    assert_eq!(words_of[&id][0], "amelia");
    assert!(why.explanation.is_empty());
}

/// Each contact's words as `name_words(name_search)`.
async fn normalised_words(
    db: &mut diesel_async::AsyncPgConnection,
    domain: i64,
) -> BTreeMap<i64, Vec<String>> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
        words: Vec<String>,
    }
    diesel::sql_query(
        "SELECT id, name_words(name_search) AS words FROM contacts WHERE domain_id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(domain)
    .load::<Row>(db)
    .await
    .expect("words")
    .into_iter()
    .map(|r| (r.id, r.words))
    .collect()
}

#[tokio::test]
async fn other_scripts_apostrophes_and_hyphens_forgive_typos() {
    let app = TestApp::start().await;
    let d = app.domain("scripts", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let c = &crm.client;
    let mut ids = BTreeMap::new();
    for n in [
        "Александр Пушкин",
        "Ольга Иванова",
        "Γιώργος Παπαδόπουλος",
        "Μαρία Κωνσταντίνου",
        "Siobhán O'Sullivan",
        "Jean-Baptiste Lefèvre",
        "Anne-Marie D'Angelo",
        "Oliver Smith",
    ] {
        let (contact, _) = c
            .create_contact(pb::CreateContactRequest {
                display_name: n.into(),
                ..Default::default()
            })
            .await
            .expect("create");
        ids.insert(n, contact.id);
    }
    for (query, intended, explanation) in [
        (
            "алксандр",
            "Александр Пушкин",
            "Александр ~ алксандр, 1 typo",
        ),
        ("пушкни", "Александр Пушкин", "Пушкин ~ пушкни, 1 typo"),
        ("ИВАНВОА", "Ольга Иванова", "Иванова ~ иванвоа, 1 typo"),
        (
            "ольга иванва",
            "Ольга Иванова",
            "Ольга; Иванова ~ иванва, 1 typo",
        ),
        (
            "γιοργος",
            "Γιώργος Παπαδόπουλος",
            "Γιώργος ~ γιοργος, 1 typo",
        ),
        (
            "παπαδοπουλς",
            "Γιώργος Παπαδόπουλος",
            "Παπαδόπουλος ~ παπαδοπουλς, 1 typo",
        ),
        (
            "παπδοπουλς",
            "Γιώργος Παπαδόπουλος",
            "Παπαδόπουλος ~ παπδοπουλς, 2 typos",
        ),
        (
            "κωνσταντινυο",
            "Μαρία Κωνσταντίνου",
            "Κωνσταντίνου ~ κωνσταντινυο, 1 typo",
        ),
        (
            "o'sulivan",
            "Siobhán O'Sullivan",
            "O; Sullivan ~ sulivan, 1 typo",
        ),
        (
            "osullivan",
            "Siobhán O'Sullivan",
            "Sullivan ~ osullivan, 1 typo",
        ),
        (
            "siobhan o'sullivna",
            "Siobhán O'Sullivan",
            "Siobhán; O; Sullivan ~ sullivna, 1 typo",
        ),
        (
            "jean-batiste",
            "Jean-Baptiste Lefèvre",
            "Jean; Baptiste ~ batiste, 1 typo",
        ),
        (
            "jean baptise lefevre",
            "Jean-Baptiste Lefèvre",
            "Jean; Baptiste ~ baptise, 1 typo; Lefèvre",
        ),
        (
            "lefevrre",
            "Jean-Baptiste Lefèvre",
            "Lefèvre ~ lefevrre, 1 typo",
        ),
        (
            "d'angleo",
            "Anne-Marie D'Angelo",
            "D; Angelo ~ angleo, 1 typo",
        ),
        (
            "anne-marei",
            "Anne-Marie D'Angelo",
            "Anne; Marie ~ marei, 1 typo",
        ),
        ("smith oliver", "Oliver Smith", "Smith; Oliver"),
        ("smith oli", "Oliver Smith", "Smith; Oliver ~ oli, prefix"),
    ] {
        let (id, why) = first_hit(c, query)
            .await
            .unwrap_or_else(|| panic!("{query}: nothing"));
        assert_eq!(id, ids[intended], "{query}");
        assert_eq!(why.explanation, explanation, "{query}");
    }
}
