//! Text that crosses the wire: one type, [`Text`], built only by [`Text::parse`] under a
//! [`TextRule`], so that no string of a request reaches the rules or the database unchecked.
//!
//! The policy, field by field, is one of two rules:
//! - **line** (identifiers, names, numbers, addresses, labels, keys, queries): trimmed, and no
//!   control character at all (Unicode category Cc: NUL, tab, newline, escape, DEL, C1);
//! - **paragraph** (free text: contact descriptions, the queue member's description, call
//!   variable values, attribute values): tabs, newlines and carriage returns are kept, every
//!   other control character is refused; leading and trailing whitespace is trimmed.
//!
//! NUL is refused by both (PostgreSQL cannot store it in `text`). Lengths count characters.

use std::fmt;

/// How a text field is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// Most characters.
    pub max: usize,
    /// Whether empty (after trimming) is refused.
    pub required: bool,
    /// Whether tabs and line breaks are kept (free text).
    pub multiline: bool,
}

impl TextRule {
    /// A single line of at most `max` characters; empty allowed.
    pub const fn line(max: usize) -> Self {
        Self {
            max,
            required: false,
            multiline: false,
        }
    }

    /// Free text of at most `max` characters (tabs and line breaks kept); empty allowed.
    pub const fn paragraph(max: usize) -> Self {
        Self {
            max,
            required: false,
            multiline: true,
        }
    }

    /// The same rule, refusing empty text.
    pub const fn required(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }
}

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Empty (or only whitespace) where text is required.
    Empty,
    /// Longer than the rule allows.
    TooLong {
        /// The most characters allowed.
        max: usize,
    },
    /// A control character the rule refuses.
    Control {
        /// The character.
        ch: char,
        /// Its position, in characters from the start (after trimming).
        at: usize,
    },
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Empty => f.write_str("must not be empty"),
            TextError::TooLong { max } => write!(f, "must be at most {max} characters"),
            TextError::Control { ch, at } => write!(
                f,
                "must not contain control characters (U+{:04X} at position {at})",
                u32::from(*ch)
            ),
        }
    }
}

impl std::error::Error for TextError {}

/// Text that passed a [`TextRule`]: trimmed, within its length, free of the control characters
/// the rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(String);

impl Text {
    /// Checks `raw` against `rule`.
    pub fn parse(raw: &str, rule: TextRule) -> Result<Text, TextError> {
        let t = raw.trim();
        if let Some((at, ch)) = t
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() && !(rule.multiline && matches!(c, '\t' | '\n' | '\r')))
        {
            return Err(TextError::Control { ch, at });
        }
        if rule.required && t.is_empty() {
            return Err(TextError::Empty);
        }
        if t.chars().count() > rule.max {
            return Err(TextError::TooLong { max: rule.max });
        }
        Ok(Text(t.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_refuse_every_control_character() {
        let rule = TextRule::line(10);
        assert_eq!(
            Text::parse("  Ann  ", rule).map(Text::into_string),
            Ok("Ann".into())
        );
        for bad in ["a\0b", "a\tb", "a\nb", "a\u{1b}b", "a\u{7f}b", "a\u{85}b"] {
            assert!(
                matches!(
                    Text::parse(bad, rule),
                    Err(TextError::Control { at: 1, .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(Text::parse("", rule.required()), Err(TextError::Empty));
        assert_eq!(Text::parse("   ", rule.required()), Err(TextError::Empty));
        assert_eq!(
            Text::parse("ééééééééééé", rule),
            Err(TextError::TooLong { max: 10 })
        );
        assert!(
            Text::parse("éééééééééé", rule).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn paragraphs_keep_tabs_and_line_breaks_only() {
        let rule = TextRule::paragraph(100);
        assert_eq!(
            Text::parse("Call\tafter 18:00\r\nnot Sundays\n", rule).map(Text::into_string),
            Ok("Call\tafter 18:00\r\nnot Sundays".into())
        );
        for bad in ["a\0", "a\u{1b}[31m", "a\u{7}", "a\u{9b}"] {
            assert!(Text::parse(bad, rule).is_err(), "{bad:?}");
        }
        assert_eq!(
            Text::parse("x\0", rule).map_err(|e| e.to_string()),
            Err("must not contain control characters (U+0000 at position 1)".into())
        );
    }
}
