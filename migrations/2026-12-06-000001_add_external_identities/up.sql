-- Tokens from the platform's identity provider name their domain by a key of the platform's
-- (a realm, a tenant id) and their user by the provider's subject (any string). Both are kept
-- on the rows they name, so that a token resolves to a domain and a user with the lookups the
-- session already makes.
ALTER TABLE domains
    ADD COLUMN external_key text UNIQUE CHECK (length(external_key) BETWEEN 1 AND 200);
COMMENT ON COLUMN domains.external_key IS 'The identity provider''s name for this domain: the value of the domain claim (--jwt-domain-claim) its tokens carry. NULL: none.';

ALTER TABLE users
    ADD COLUMN external_subject text CHECK (length(external_subject) BETWEEN 1 AND 255),
    ADD COLUMN email text CHECK (length(email) BETWEEN 3 AND 254),
    ADD CONSTRAINT users_domain_external_subject_key UNIQUE (domain_id, external_subject);
COMMENT ON COLUMN users.external_subject IS 'The user''s subject at the identity provider (the sub claim, or --jwt-subject-claim). NULL: a client-info user only, named by id.';
COMMENT ON COLUMN users.email IS 'The e-mail address the identity provider gave when the user was provisioned on first use.';
