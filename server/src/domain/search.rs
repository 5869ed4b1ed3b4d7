//! Contact search: what a query asks for, and how a destination string is read.

use super::ids::UserId;
use super::phone::{Region, parse_phone};

/// Shortest name query.
pub const MIN_NAME_QUERY: usize = 2;
/// Longest name query.
pub const MAX_NAME_QUERY: usize = 200;
/// Longest destination query.
pub const MAX_DESTINATION_QUERY: usize = 254;
/// Fewest digits in a digit-run query.
pub const MIN_DIGIT_RUN: usize = 3;

/// How a destination string is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationQuery {
    /// A valid phone number in any format: exact E.164 match.
    Phone {
        /// The E.164 form.
        e164: String,
    },
    /// A run of digits that is not a whole number: matched inside stored numbers.
    Digits(String),
    /// An e-mail or the start of one: case-insensitive prefix match (exact when whole).
    Email(String),
}

/// Reads a destination query: a valid number in the domain's region is a phone; digits (with
/// separators) otherwise are a digit run; anything else is an e-mail or its prefix.
pub fn classify_destination(input: &str, region: Region) -> Result<DestinationQuery, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > MAX_DESTINATION_QUERY {
        return Err(format!(
            "must be at most {MAX_DESTINATION_QUERY} characters"
        ));
    }
    let phone_like = s
        .chars()
        .all(|c| c.is_ascii_digit() || " -.()/+".contains(c));
    if phone_like {
        if let Ok(p) = parse_phone(s, region) {
            return Ok(DestinationQuery::Phone { e164: p.e164 });
        }
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < MIN_DIGIT_RUN {
            return Err(format!("a digit run needs at least {MIN_DIGIT_RUN} digits"));
        }
        return Ok(DestinationQuery::Digits(digits));
    }
    Ok(DestinationQuery::Email(s.to_lowercase()))
}

/// Characters that make a query literal: a user who types them means them exactly.
const LITERAL_MARKERS: &str = "%_\\*\"";

/// True when a name query is typo-tolerant: it holds none of the characters that people type
/// to be precise (`% _ \\ * "`), which are then matched as they are. Its words may then be
/// typos of the words of names ([`typos_allowed`]); apostrophes and hyphens separate words
/// ("o'brein" is "o" and a typo of "brien").
pub fn typo_tolerant(q: &str) -> bool {
    !q.chars().any(|c| LITERAL_MARKERS.contains(c))
}

/// How many typos a word of a name forgives in the query word typed for it: 1 from 5
/// characters, 2 from 9 (Meilisearch's thresholds), none below: "amlia" (5 letters) and "lcas"
/// (4) find Amelia and Lucas, and Jack, Mia or Lee match only exactly or as prefixes. Counted
/// on the name's word, so that every one-typo variant of a name of 5 letters finds it,
/// including a dropped letter that leaves 4. The migration's `name_word_variants()` indexes
/// the deletions that rule needs.
pub fn typos_allowed(name_word: &str) -> usize {
    match name_word.chars().count() {
        n if n >= 9 => 2,
        n if n >= 5 => 1,
        _ => 0,
    }
}

/// How a word of a name matched a word of the query, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WordMatch {
    /// The same word.
    Exact,
    /// The word starts with the query's last word (still being typed).
    Prefix,
    /// The word is this many typos (1 or 2) from the query's word.
    Typos(u8),
}

impl WordMatch {
    /// The match of a name's `word` to a query's word, both normalised (lower case, no
    /// accents): exact, or within the name word's [`typos_allowed`] by the optimal string
    /// alignment distance (insertion, deletion, substitution, or a swap of neighbouring
    /// letters, each one typo; strsim's `osa_distance`, the restricted Damerau distance).
    /// Prefixes are found by the statement, not here.
    pub fn of(query_word: &str, word: &str) -> Option<Self> {
        if query_word == word {
            return Some(Self::Exact);
        }
        let allowed = typos_allowed(word);
        if allowed == 0 {
            return None;
        }
        let d = strsim::osa_distance(query_word, word);
        (d <= allowed).then_some(Self::Typos(d as u8))
    }

    /// Its rank (lower is better), as the statements compute it: 0 exact, 1 prefix, 2 one
    /// typo, 3 two typos.
    pub fn rank(self) -> i64 {
        match self {
            Self::Exact => 0,
            Self::Prefix => 1,
            Self::Typos(n) => 1 + i64::from(n),
        }
    }

    /// The match of a rank.
    pub fn from_rank(rank: i64) -> Option<Self> {
        match rank {
            0 => Some(Self::Exact),
            1 => Some(Self::Prefix),
            2 => Some(Self::Typos(1)),
            3 => Some(Self::Typos(2)),
            _ => None,
        }
    }

    /// How the agent reads it: `Amelia ~ amlia, 1 typo`, `Smithson ~ smi, prefix`, `Lee`.
    pub fn explain(self, name_word: &str, query_word: &str) -> String {
        match self {
            Self::Exact => name_word.to_owned(),
            Self::Prefix => format!("{name_word} ~ {query_word}, prefix"),
            Self::Typos(1) => format!("{name_word} ~ {query_word}, 1 typo"),
            Self::Typos(n) => format!("{name_word} ~ {query_word}, {n} typos"),
        }
    }
}

/// The words of a name as they are displayed, split where `name_words()` splits the
/// normalised name (runs of space and ASCII punctuation below `0`).
pub fn display_words(name: &str) -> Vec<&str> {
    name.split(|c: char| ('\u{1}'..='/').contains(&c))
        .filter(|w| !w.is_empty())
        .collect()
}

/// True when a name query is one word: it holds no space or ASCII punctuation below `0`
/// (`!"#$%&'()*+,-./`), the characters that separate the words of a name in the database
/// (`name_words()` in the migrations). A typo of one word is matched against the domain's
/// vocabulary of name words.
pub fn one_word(q: &str) -> bool {
    !q.trim().chars().any(|c| c < '0')
}

/// Where a page of hits ended: the last hit's place in the result order, which is by
/// `sort_key`, then `tiebreak` (byte order), then contact id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The rank of the hit (lower is better): its band, and how well it matched within it.
    pub sort_key: i64,
    /// The text that orders hits of one rank (a name, a word); empty when ids alone do.
    pub tiebreak: String,
    /// The contact.
    pub id: i64,
}

/// Escapes `%`, `_` and `\` so a LIKE pattern matches them literally (ESCAPE '\').
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One search condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Name: case- and accent-insensitive, substring and typo-tolerant.
    Name(String),
    /// Destination.
    Destination(DestinationQuery),
    /// Attribute `key=value`, or `key=*` (`value: None`).
    Attribute {
        /// Key.
        key: String,
        /// Value, `None` for any.
        value: Option<String>,
    },
    /// Messaging identity, exact.
    Messaging {
        /// Protocol.
        protocol: String,
        /// External user id.
        external_user_id: String,
    },
}

/// A validated search.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The main conditions.
    pub conditions: Vec<Condition>,
    /// True: any condition may match (OR); false: all must (AND).
    pub any: bool,
    /// Filter: carries every one of these labels.
    pub labels: Vec<String>,
    /// Filter: owned by this user.
    pub owner: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_read_by_shape() {
        let fr: Region = "FR".parse().expect("region");
        assert_eq!(
            classify_destination("+33 6 28 23 04 55", fr),
            Ok(DestinationQuery::Phone {
                e164: "+33628230455".into()
            })
        );
        assert_eq!(
            classify_destination("06 28 23 04 55", fr),
            Ok(DestinationQuery::Phone {
                e164: "+33628230455".into()
            })
        );
        assert_eq!(
            classify_destination("2304", fr),
            Ok(DestinationQuery::Digits("2304".into()))
        );
        assert_eq!(
            classify_destination("23-04", fr),
            Ok(DestinationQuery::Digits("2304".into()))
        );
        assert!(classify_destination("12", fr).is_err());
        assert_eq!(
            classify_destination(" Ann.Lee@Example.com ", fr),
            Ok(DestinationQuery::Email("ann.lee@example.com".into()))
        );
        assert_eq!(
            classify_destination("ann.l", fr),
            Ok(DestinationQuery::Email("ann.l".into()))
        );
        assert!(classify_destination("  ", fr).is_err());
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
        assert_eq!(escape_like("o'brien*"), "o'brien*");
    }

    #[test]
    fn one_word_queries_have_no_separator() {
        assert!(one_word("amelia"));
        assert!(one_word(" Zoë "));
        assert!(one_word("a_b"), "_ is not a separator");
        assert!(!one_word("amelia smith"));
        assert!(!one_word("o'brien"));
        assert!(!one_word("jean-pierre"));
        assert!(!one_word("50%"));
    }

    #[test]
    fn precise_characters_make_a_query_literal() {
        assert!(!typo_tolerant("50%"));
        assert!(!typo_tolerant("a_b"));
        assert!(typo_tolerant("smiht"));
        assert!(!typo_tolerant("star*"));
        assert!(typo_tolerant("o'brein"));
    }

    #[test]
    fn words_forgive_one_typo_from_5_letters_and_two_from_9() {
        use WordMatch::*;
        assert_eq!(WordMatch::of("amelia", "amelia"), Some(Exact));
        assert_eq!(
            WordMatch::of("amlia", "amelia"),
            Some(Typos(1)),
            "a dropped letter"
        );
        assert_eq!(WordMatch::of("ameila", "amelia"), Some(Typos(1)), "a swap");
        assert_eq!(WordMatch::of("amelai", "amelia"), Some(Typos(1)));
        assert_eq!(
            WordMatch::of("ameliia", "amelia"),
            Some(Typos(1)),
            "a doubled letter"
        );
        assert_eq!(
            WordMatch::of("amxlia", "amelia"),
            Some(Typos(1)),
            "a changed letter"
        );
        assert_eq!(WordMatch::of("olivr", "oliveira"), None);
        assert_eq!(WordMatch::of("olivr", "oliver"), Some(Typos(1)));
        assert_eq!(WordMatch::of("jonh", "john"), None, "4 letters: exact only");
        assert_eq!(WordMatch::of("amela", "amelia"), Some(Typos(1)));
        assert_eq!(
            WordMatch::of("amila", "amelia"),
            None,
            "two typos in 6 letters"
        );
        assert_eq!(WordMatch::of("amil", "amelia"), None);
        assert_eq!(
            WordMatch::of("shcnieder", "schneider"),
            Some(Typos(2)),
            "9 letters: two"
        );
        assert_eq!(
            WordMatch::of("kowlasky", "kowalski"),
            None,
            "8 letters: one typo"
        );
        assert_eq!(
            WordMatch::of("lcas", "lucas"),
            Some(Typos(1)),
            "4 letters left of 5"
        );
        assert_eq!(
            WordMatch::of("jackk", "jack"),
            None,
            "Jack: exact or prefix only"
        );
        assert_eq!(WordMatch::of("ολυμπια", "ολυμπία"), Some(Typos(1)));
        assert!(Exact < Prefix && Prefix < Typos(1) && Typos(1) < Typos(2));
        for m in [Exact, Prefix, Typos(1), Typos(2)] {
            assert_eq!(WordMatch::from_rank(m.rank()), Some(m));
        }
        assert_eq!(
            Typos(1).explain("Amelia", "amlia"),
            "Amelia ~ amlia, 1 typo"
        );
    }

    #[test]
    fn display_words_split_like_the_database() {
        assert_eq!(
            display_words("Jean-Pierre O'Brien"),
            ["Jean", "Pierre", "O", "Brien"]
        );
        assert_eq!(display_words(" (Anna)  Lee "), ["Anna", "Lee"]);
        assert_eq!(display_words("Zoë Müller"), ["Zoë", "Müller"]);
    }
}
