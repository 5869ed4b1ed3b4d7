//! E-mail address validation and normalisation.

/// A syntactically valid e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    /// As entered, trimmed.
    pub address: String,
    /// Lower-cased: the search and uniqueness key.
    pub normalized: String,
}

/// Longest address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Why an address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing given.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_EMAIL_LEN`].
    #[error("must be at most {MAX_EMAIL_LEN} characters")]
    TooLong,
    /// Not of the form local@domain.tld.
    #[error("is not an e-mail address (expected local@domain)")]
    Malformed,
}

/// Validates and normalises an address: one `@`, a non-empty local part, a domain with a dot,
/// no whitespace or control characters.
pub fn parse_email(input: &str) -> Result<EmailAddress, EmailError> {
    let address = input.trim();
    if address.is_empty() {
        return Err(EmailError::Empty);
    }
    if address.chars().count() > MAX_EMAIL_LEN {
        return Err(EmailError::TooLong);
    }
    let (local, domain) = address.split_once('@').ok_or(EmailError::Malformed)?;
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '@';
    if local.is_empty()
        || local.len() > 64
        || domain.len() < 3
        || local.chars().any(bad_char)
        || domain.chars().any(|c| bad_char(c) || c == '_')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(EmailError::Malformed);
    }
    Ok(EmailAddress {
        address: address.to_owned(),
        normalized: address.to_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_space() {
        let e = parse_email("  Ann.Lee@Example.COM ").expect("valid");
        assert_eq!(e.address, "Ann.Lee@Example.COM");
        assert_eq!(e.normalized, "ann.lee@example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "a b@x.com",
            "a@x",
            "a@@x.com",
            "a@x..com",
            "a@.x.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse_email(&format!("{}@x.com", "a".repeat(260))),
            Err(EmailError::TooLong)
        );
    }
}
