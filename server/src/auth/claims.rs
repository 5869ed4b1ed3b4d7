//! How an identity provider's token names the caller, configured rather than coded per
//! provider: which claim is the user's subject, which claim names the domain (or which domain
//! an issuer's tokens belong to), which claims hold roles or scopes, and which permissions a
//! role grants. Claim names may be paths (`realm_access.roles`).
//!
//! A low module: it imports only `domain`.

use crate::domain::caller::{Identity, Principal, Profile, Realm};
use crate::domain::permission::{Permission, PermissionSet};

/// The mapping from an identity provider's claims to a [`Principal`].
#[derive(Debug, Clone)]
pub struct ClaimMap {
    /// The claim that is the user's subject (`sub` by default).
    pub subject: String,
    /// The claim whose value is a domain's external key.
    pub domain: Option<String>,
    /// Issuers whose tokens all belong to one domain, by the domain's name (wins over
    /// `domain`).
    pub issuer_domains: Vec<(String, String)>,
    /// Claims holding the caller's roles or scopes: an array of strings, or a string of
    /// space-separated names (OAuth's `scope`).
    pub roles: Vec<String>,
    /// Permissions a role grants; a role named like a permission (`contacts.read`) grants it
    /// without an entry.
    pub role_permissions: Vec<(String, Vec<Permission>)>,
}

impl Default for ClaimMap {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            domain: None,
            issuer_domains: Vec::new(),
            roles: vec!["permissions".into()],
            role_permissions: Vec::new(),
        }
    }
}

/// A claim by name, or by path: `realm_access.roles` is `roles` inside `realm_access`. A name
/// that holds dots itself (`https://example.com/roles`) is taken whole first.
fn claim<'a>(claims: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    name.split('.')
        .try_fold(claims, |v, part| v.get(part))
        .filter(|_| name.contains('.'))
}

/// A claim as text: a string, or a number written out.
fn text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ClaimMap {
    /// The principal a verified token's `claims` name, or why they name none.
    pub fn principal(
        &self,
        claims: &serde_json::Value,
        expires_at: i64,
    ) -> Result<Principal, String> {
        let subject = claim(claims, &self.subject)
            .and_then(text)
            .ok_or_else(|| format!("the token has no {:?} claim naming its user", self.subject))?;
        let issuer = claims.get("iss").and_then(serde_json::Value::as_str);
        let by_issuer = issuer.and_then(|iss| {
            self.issuer_domains
                .iter()
                .find(|(i, _)| i == iss)
                .map(|(_, d)| Realm::Name(d.clone()))
        });
        let realm = match (by_issuer, &self.domain) {
            (Some(realm), _) => realm,
            (None, Some(name)) => claim(claims, name)
                .and_then(text)
                .map(Realm::Key)
                .ok_or_else(|| format!("the token has no {name:?} claim naming its domain"))?,
            (None, None) => {
                return Err(
                    "the token's issuer belongs to no domain (see --jwt-issuer-domain \
                     and --jwt-domain-claim)"
                        .into(),
                );
            }
        };
        let mut permissions = PermissionSet::default();
        for role in self.roles(claims) {
            if let Some(p) = Permission::parse(&role) {
                permissions.insert(p);
            }
            for (name, granted) in &self.role_permissions {
                if *name == role {
                    for p in granted {
                        permissions.insert(*p);
                    }
                }
            }
        }
        let profile = Profile {
            name: ["name", "preferred_username"]
                .iter()
                .find_map(|c| claims.get(*c).and_then(text)),
            email: claims.get("email").and_then(text),
        };
        Ok(Principal {
            identity: Identity::External { realm, subject },
            permissions,
            expires_at,
            profile,
        })
    }

    /// Every role or scope the token holds, in the configured claims.
    fn roles(&self, claims: &serde_json::Value) -> Vec<String> {
        let mut out = Vec::new();
        for name in &self.roles {
            match claim(claims, name) {
                Some(serde_json::Value::Array(items)) => {
                    out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_owned)));
                }
                Some(serde_json::Value::String(s)) => {
                    out.extend(s.split_whitespace().map(str::to_owned));
                }
                _ => {}
            }
        }
        out
    }
}

/// Parses `ROLE=PERMISSION[,PERMISSION...]` (`--jwt-role`).
pub fn parse_role(s: &str) -> Result<(String, Vec<Permission>), String> {
    let (role, permissions) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write ROLE=PERMISSION[,PERMISSION...]"))?;
    let role = role.trim();
    if role.is_empty() {
        return Err(format!("{s:?}: the role is empty"));
    }
    let permissions = super::keys::parse_permissions(permissions)?;
    Ok((role.to_owned(), permissions))
}

/// Parses `ISSUER=DOMAIN` (`--jwt-issuer-domain`): the issuer's tokens belong to the domain
/// named DOMAIN.
pub fn parse_issuer_domain(s: &str) -> Result<(String, String), String> {
    let (issuer, domain) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: write ISSUER=DOMAIN (the domain's name)"))?;
    let (issuer, domain) = (issuer.trim(), domain.trim());
    if issuer.is_empty() || domain.is_empty() {
        return Err(format!("{s:?}: write ISSUER=DOMAIN (the domain's name)"));
    }
    Ok((issuer.to_owned(), domain.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keycloak() -> ClaimMap {
        ClaimMap {
            domain: Some("tenant".into()),
            issuer_domains: vec![("https://kc/realms/acme".into(), "acme".into())],
            roles: vec!["realm_access.roles".into()],
            role_permissions: vec![
                ("agent".into(), vec![Permission::InteractionsHandle]),
                (
                    "crm".into(),
                    vec![Permission::ContactsRead, Permission::ContactsWrite],
                ),
            ],
            ..ClaimMap::default()
        }
    }

    #[test]
    fn keycloak_shaped_claims_name_a_principal() {
        let claims = json!({
            "iss": "https://kc/realms/acme", "sub": "f3c1-77", "aud": ["client-info", "account"],
            "azp": "desk", "preferred_username": "ann", "email": "ann@example.com",
            "realm_access": {"roles": ["agent", "offline_access", "contacts.read"]}
        });
        let p = keycloak().principal(&claims, 99).expect("a principal");
        assert_eq!(
            p.identity,
            Identity::External {
                realm: Realm::Name("acme".into()),
                subject: "f3c1-77".into()
            }
        );
        assert!(p.has(Permission::InteractionsHandle));
        assert!(p.has(Permission::ContactsRead));
        assert!(!p.has(Permission::ContactsWrite));
        assert_eq!(p.profile.name.as_deref(), Some("ann"));
        assert_eq!(p.profile.email.as_deref(), Some("ann@example.com"));
        assert_eq!(p.expires_at, 99);
    }

    #[test]
    fn the_domain_comes_from_a_claim_when_the_issuer_has_none() {
        let claims = json!({"iss": "https://other", "sub": 42, "tenant": "t-9",
                            "realm_access": {"roles": ["crm"]}});
        let p = keycloak().principal(&claims, 1).expect("a principal");
        assert_eq!(
            p.identity,
            Identity::External {
                realm: Realm::Key("t-9".into()),
                subject: "42".into()
            }
        );
        assert!(p.has(Permission::ContactsWrite));
        assert!(keycloak().principal(&json!({"sub": "x"}), 1).is_err());
        assert!(keycloak().principal(&json!({"tenant": "t"}), 1).is_err());
    }

    #[test]
    fn scopes_are_read_from_strings_and_arrays() {
        let map = ClaimMap {
            domain: Some("tid".into()),
            roles: vec!["scp".into(), "scope".into()],
            ..ClaimMap::default()
        };
        let p = map
            .principal(
                &json!({"sub": "s", "tid": "t", "scp": ["contacts.read"],
                        "scope": "openid interactions.route"}),
                1,
            )
            .expect("a principal");
        assert!(p.has(Permission::ContactsRead));
        assert!(p.has(Permission::InteractionsRoute));
        assert!(!p.has(Permission::ContactsWrite));
    }

    #[test]
    fn settings_parse() {
        assert_eq!(
            parse_role("agent=interactions.handle,contacts.read"),
            Ok((
                "agent".into(),
                vec![Permission::InteractionsHandle, Permission::ContactsRead]
            ))
        );
        assert!(parse_role("agent").is_err());
        assert!(parse_role("agent=contacts.admin").is_err());
        assert_eq!(
            parse_issuer_domain("https://kc/realms/a=acme"),
            Ok(("https://kc/realms/a".into(), "acme".into()))
        );
        assert!(parse_issuer_domain("acme").is_err());
    }
}
