//! `phonenumber::is_valid` and `PhoneNumber::country().id()`, answered from patterns compiled once
//! per region.
//!
//! The crate decides validity by matching the national number against its region's general
//! pattern and then each number type's pattern (premium rate, toll free, ... fixed line,
//! mobile), each through its regex cache: a map from a pattern's text to its compiled regex,
//! which hashes the text (hundreds of characters) with SipHash at every match. That was about
//! 8 % of a destination search's server CPU, and the type checks another 10 % (BENCHMARKS.md,
//! run M). This module asks exactly the same questions of the same metadata, in the same
//! order, with each region's patterns compiled on first use and kept: the answer is the
//! crate's (a unit test compares the two on every example number of many regions and on
//! variants of them); only the lookups are gone.
//!
//! The crate's rules, mirrored here: a pattern matches when the number's length is one of
//! the pattern's possible lengths (or it lists none) and a match of the pattern starts at the
//! number's first digit (compiled here anchored, `^(?:...)`, which asks the same; whitespace in
//! the patterns ignored, as the crate compiles them). A country
//! code of one region uses that region (`001`: the non-geographic entity of that code); a
//! code of several regions uses the first whose leading-digits pattern matches at the start,
//! or, for a region without one, the first where the number has a type. The number is valid
//! when its region's general pattern matches and so does one of its type patterns.
//!
//! The region the crate assigns a number to (`country().id()`) is found by the same matches,
//! and the crate makes them again through its cache (a third of a parse's CPU): [`check`]
//! answers both from one pass.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use phonenumber::metadata::{DATABASE, Descriptor};
use phonenumber::{Metadata, PhoneNumber};
use regex::{Regex, RegexBuilder};

/// `pattern` compiled as the crate compiles its metadata (whitespace ignored: the patterns are
/// laid out on several lines), anchored at the start.
fn anchored(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{pattern}\n)"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

/// One pattern with its possible lengths.
struct Pattern {
    regex: Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn of(d: &Descriptor) -> Option<Pattern> {
        let regex = anchored(d.national_number().as_str())?;
        Some(Pattern {
            regex,
            lengths: d.possible_length().to_vec(),
        })
    }

    fn is_match(&self, national: &str) -> bool {
        let len = u16::try_from(national.len()).unwrap_or(u16::MAX);
        (self.lengths.is_empty() || self.lengths.contains(&len)) && self.regex.is_match(national)
    }
}

/// A region's compiled patterns.
struct Rules {
    general: Pattern,
    /// The number types the crate tries, in its order.
    types: Vec<Pattern>,
    leading_digits: Option<Regex>,
}

impl Rules {
    /// `None` when a pattern does not compile here (the caller then asks the crate).
    fn of(meta: &Metadata) -> Option<Rules> {
        let d = meta.descriptors();
        let mut types = Vec::new();
        for t in [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ]
        .into_iter()
        .flatten()
        {
            types.push(Pattern::of(t)?);
        }
        let leading_digits = match meta.leading_digits() {
            Some(p) => Some(anchored(p.as_str())?),
            None => None,
        };
        Some(Rules {
            general: Pattern::of(d.general())?,
            types,
            leading_digits,
        })
    }

    /// The crate's `number_type(..) != Unknown`.
    fn has_type(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// Compiled rules by metadata id (a region, or `001` plus its code for non-geographic codes).
static RULES: LazyLock<RwLock<HashMap<String, Option<Arc<Rules>>>>> =
    LazyLock::new(Default::default);

fn rules(key: &str, meta: &Metadata) -> Option<Arc<Rules>> {
    if let Ok(map) = RULES.read()
        && let Some(r) = map.get(key)
    {
        return r.clone();
    }
    let compiled = Rules::of(meta).map(Arc::new);
    if let Ok(mut map) = RULES.write() {
        map.insert(key.to_owned(), compiled.clone());
    }
    compiled
}

/// What the crate says of a number: its region and its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `number.country().id()`: the region whose metadata applies, `None` for a
    /// non-geographic code (`001`) or when no region of a shared code claims the number.
    pub region: Option<String>,
    /// `phonenumber::is_valid(number)`.
    pub valid: bool,
}

/// The metadata the crate applies to a national number of a country code (its
/// `validator::source_for`).
enum Source {
    /// The rules' key, the metadata and the region id (`None` for a non-geographic code).
    Found(Cow<'static, str>, &'static Metadata, Option<String>),
    /// No region claims it.
    None,
    /// A pattern did not compile here: ask the crate.
    Crate,
}

fn source(code: u16, national: &str) -> Source {
    let Some(regions) = DATABASE.region(&code) else {
        return Source::None;
    };
    match regions.as_slice() {
        [] => Source::None,
        ["001"] => match DATABASE.by_code(&code).and_then(|m| m.into_iter().next()) {
            Some(meta) => Source::Found(Cow::Owned(format!("001+{code}")), meta, None),
            None => Source::None,
        },
        [one] => match DATABASE.by_id(*one) {
            Some(meta) => Source::Found(Cow::Borrowed(*one), meta, Some((*one).to_owned())),
            None => Source::None,
        },
        several => {
            for region in several {
                let Some(meta) = DATABASE.by_id(*region) else {
                    return Source::Crate;
                };
                let Some(r) = rules(region, meta) else {
                    return Source::Crate;
                };
                let hit = match &r.leading_digits {
                    Some(leading) => leading.is_match(national),
                    None => r.has_type(national),
                };
                if hit {
                    return Source::Found(Cow::Borrowed(*region), meta, Some((*region).to_owned()));
                }
            }
            Source::None
        }
    }
}

/// The crate's answers for `number`, from the compiled patterns: the crate finds the region
/// (`country().id()`) by the same matches as validity does, through its regex cache again, so
/// both come from one pass here. One quirk is kept: the crate's validity reads the national
/// number with its leading zeros (Italy's `06...`) and its region without them, so a number
/// with leading zeros is looked up twice.
pub fn check(number: &PhoneNumber) -> Check {
    let crate_answer = || Check {
        region: number.country().id().map(|id| id.as_ref().to_owned()),
        valid: phonenumber::is_valid(number),
    };
    let code = number.country().code();
    let national = number.national().to_string();
    let (valid, region) = match source(code, &national) {
        Source::Found(key, meta, region) => match rules(&key, meta) {
            Some(r) => (r.has_type(&national), region),
            None => return crate_answer(),
        },
        Source::None => (false, None),
        Source::Crate => return crate_answer(),
    };
    if number.national().zeros() == 0 {
        return Check { region, valid };
    }
    match source(code, &number.national().value().to_string()) {
        Source::Found(_, _, region) => Check { region, valid },
        Source::None => Check {
            region: None,
            valid,
        },
        Source::Crate => crate_answer(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example number of `region`'s metadata, and variants of each (a digit more, a
    /// digit less, each digit changed), parsed in that region.
    fn numbers(region: &str) -> Vec<PhoneNumber> {
        let meta = DATABASE.by_id(region).expect(region);
        let d = meta.descriptors();
        let examples: Vec<String> = [
            Some(d.general()),
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|d| d.example().map(str::to_owned))
        .collect();
        let mut inputs = Vec::new();
        for e in examples {
            inputs.push(format!("{e}5"));
            if e.len() > 3 {
                inputs.push(e[..e.len() - 1].to_owned());
            }
            for (i, c) in e.char_indices() {
                let other = if c == '9' { '0' } else { '9' };
                inputs.push(format!("{}{other}{}", &e[..i], &e[i + 1..]));
            }
            inputs.push(e);
        }
        let region_id: phonenumber::country::Id = region.parse().expect(region);
        inputs
            .iter()
            .filter_map(|i| phonenumber::parse(Some(region_id), i).ok())
            .collect()
    }

    #[test]
    fn answers_as_the_crate_does_on_examples_and_their_variants() {
        // The seed's four countries, countries sharing a code (+1, +44, +7, +262, +590), zeros
        // kept in the national number (IT), long and short plans.
        let (mut checked, mut valid) = (0, 0);
        for region in [
            "GB", "FR", "DE", "BR", "US", "CA", "JM", "GG", "JE", "IM", "RU", "KZ", "IT", "VA",
            "RE", "YT", "GP", "BL", "IN", "CN", "JP", "AU", "NG", "CI", "AT", "SE", "AR", "MX",
        ] {
            for n in numbers(region) {
                let answer = check(&n);
                assert_eq!(
                    (answer.valid, answer.region.clone()),
                    (
                        phonenumber::is_valid(&n),
                        n.country().id().map(|id| id.as_ref().to_owned())
                    ),
                    "{region}: {}",
                    n.format().mode(phonenumber::Mode::E164)
                );
                checked += 1;
                valid += usize::from(answer.valid);
            }
        }
        // Both answers, many times each.
        assert!(
            valid > 500 && checked - valid > 500,
            "{valid} valid of {checked}"
        );
    }

    #[test]
    fn non_geographic_codes_and_unknown_codes() {
        for raw in [
            "+80012345678",
            "+870773111632",
            "+882345678901",
            "+99912345",
        ] {
            if let Ok(n) = phonenumber::parse(None, raw) {
                let answer = check(&n);
                assert_eq!(answer.valid, phonenumber::is_valid(&n), "{raw}");
                assert_eq!(
                    answer.region,
                    n.country().id().map(|id| id.as_ref().to_owned()),
                    "{raw}"
                );
            }
        }
    }
}
