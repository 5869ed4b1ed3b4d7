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

/// Fewest letters or digits for a name query to be typo-tolerant; shorter queries match as
/// literal substrings only.
pub const MIN_FUZZY_CHARS: usize = 4;

/// Characters that make a query literal: a user who types them means them exactly.
const LITERAL_MARKERS: &str = "%_\\*'\"";

/// True when a name query is typo-tolerant: long enough, and without the characters that
/// people type to be precise (`% _ \ * ' "`), which are then matched as they are.
pub fn typo_tolerant(q: &str) -> bool {
    q.chars().filter(|c| c.is_alphanumeric()).count() >= MIN_FUZZY_CHARS
        && !q.chars().any(|c| LITERAL_MARKERS.contains(c))
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
    fn short_queries_are_literal() {
        assert!(!typo_tolerant("50%"));
        assert!(!typo_tolerant("a_b"));
        assert!(typo_tolerant("smiht"));
        assert!(!typo_tolerant("star*"));
        assert!(!typo_tolerant("o'brien"));
    }
}
