-- Core schema of client-info. Multi-tenant from the start: every row carries domain_id, and
-- every reference between rows includes domain_id (composite foreign keys), so no row can point
-- into another domain.

CREATE TABLE domains (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    default_region   text        NOT NULL DEFAULT 'US' CHECK (default_region ~ '^[A-Z]{2}$'),
    autolink         boolean     NOT NULL DEFAULT false,
    fallback_digits  smallint    NOT NULL DEFAULT 9 CHECK (fallback_digits = 0 OR fallback_digits BETWEEN 6 AND 15),
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE domains IS 'Tenants: one contact center each. Every other row belongs to exactly one.';
COMMENT ON COLUMN domains.default_region IS 'ISO 3166-1 alpha-2 region used to parse numbers written without a country code.';
COMMENT ON COLUMN domains.autolink IS 'Bind an offered interaction at once when exactly one contact matches exactly.';
COMMENT ON COLUMN domains.fallback_digits IS 'Identification fallback: compare the last N digits (0 disables the fallback).';

CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id   bigint      NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, id)
);
COMMENT ON TABLE users IS 'Agents, supervisors, owners and service accounts; the sub claim of a token names one.';

CREATE TABLE contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id       bigint      NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    display_name    text        NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    description     text        NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
    time_zone       text        NOT NULL DEFAULT '',
    owner_id        bigint      NOT NULL,
    version         bigint      NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      bigint      NOT NULL,
    last_active_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, id),
    FOREIGN KEY (domain_id, owner_id) REFERENCES users (domain_id, id),
    FOREIGN KEY (domain_id, created_by) REFERENCES users (domain_id, id),
    FOREIGN KEY (domain_id, updated_by) REFERENCES users (domain_id, id)
);
COMMENT ON TABLE contacts IS 'CRM records of clients.';
COMMENT ON COLUMN contacts.version IS 'Optimistic concurrency: raised by every change; a write naming an older version is rejected.';
COMMENT ON COLUMN contacts.time_zone IS 'IANA time zone name, validated by the server; empty when unknown.';
COMMENT ON COLUMN contacts.last_active_at IS 'Last interaction bound or last change: orders identification candidates.';
CREATE INDEX contacts_owner_idx ON contacts (domain_id, owner_id);

CREATE TABLE labels (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id   bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    name        text   NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    UNIQUE (domain_id, name),
    UNIQUE (domain_id, id)
);
COMMENT ON TABLE labels IS 'Free tags that group contacts; created on first use.';

CREATE TABLE contact_labels (
    domain_id   bigint NOT NULL,
    contact_id  bigint NOT NULL,
    label_id    bigint NOT NULL,
    PRIMARY KEY (contact_id, label_id),
    FOREIGN KEY (domain_id, contact_id) REFERENCES contacts (domain_id, id) ON DELETE CASCADE,
    FOREIGN KEY (domain_id, label_id) REFERENCES labels (domain_id, id) ON DELETE CASCADE
);
CREATE INDEX contact_labels_label_idx ON contact_labels (label_id, contact_id);

CREATE TABLE contact_attributes (
    domain_id   bigint NOT NULL,
    contact_id  bigint NOT NULL,
    key         text   NOT NULL CHECK (key ~ '^\w{1,64}$'),
    value       text   NOT NULL CHECK (length(value) <= 1024),
    PRIMARY KEY (contact_id, key),
    FOREIGN KEY (domain_id, contact_id) REFERENCES contacts (domain_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE contact_attributes IS 'Key/value attributes of contacts.';
CREATE INDEX contact_attributes_lookup_idx ON contact_attributes (domain_id, key, value);

CREATE TABLE contact_phones (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id        bigint      NOT NULL,
    contact_id       bigint      NOT NULL,
    number           text        NOT NULL CHECK (length(number) BETWEEN 1 AND 64),
    e164             text        NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    region           text        NOT NULL DEFAULT '',
    national_number  text        NOT NULL CHECK (national_number ~ '^[0-9]{1,17}$'),
    digits_reversed  text        COLLATE "C" NOT NULL CHECK (digits_reversed ~ '^[0-9]{2,15}$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (contact_id, e164),
    FOREIGN KEY (domain_id, contact_id) REFERENCES contacts (domain_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE contact_phones IS 'Phone numbers of contacts: as entered, and normalised for matching.';
COMMENT ON COLUMN contact_phones.number IS 'The number as entered.';
COMMENT ON COLUMN contact_phones.e164 IS 'E.164 form parsed with the domain default region: the exact-match key.';
COMMENT ON COLUMN contact_phones.national_number IS 'National significant number: the first identification fallback.';
COMMENT ON COLUMN contact_phones.digits_reversed IS 'E.164 digits reversed (byte collation), so a last-N-digits match is an index range scan.';
CREATE INDEX contact_phones_e164_idx ON contact_phones (domain_id, e164);
CREATE INDEX contact_phones_national_idx ON contact_phones (domain_id, national_number);
CREATE INDEX contact_phones_suffix_idx ON contact_phones (domain_id, digits_reversed);
CREATE INDEX contact_phones_contact_idx ON contact_phones (contact_id);

CREATE TABLE contact_emails (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id   bigint      NOT NULL,
    contact_id  bigint      NOT NULL,
    address     text        NOT NULL CHECK (length(address) BETWEEN 3 AND 254),
    normalized  text        COLLATE "C" NOT NULL CHECK (normalized = lower(normalized)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (contact_id, normalized),
    FOREIGN KEY (domain_id, contact_id) REFERENCES contacts (domain_id, id) ON DELETE CASCADE
);
COMMENT ON COLUMN contact_emails.normalized IS 'Trimmed, lower-cased address (byte collation): the search and uniqueness key; prefix search is an index range scan.';
CREATE INDEX contact_emails_lookup_idx ON contact_emails (domain_id, normalized);
CREATE INDEX contact_emails_contact_idx ON contact_emails (contact_id);

CREATE TABLE contact_messaging_channels (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id         bigint      NOT NULL,
    contact_id        bigint      NOT NULL,
    protocol          text        NOT NULL CHECK (protocol ~ '^[a-z0-9_-]{1,32}$'),
    external_user_id  text        NOT NULL CHECK (length(external_user_id) BETWEEN 1 AND 256),
    display_name      text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    created_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (domain_id, contact_id) REFERENCES contacts (domain_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE contact_messaging_channels IS 'Messaging identities of contacts; one identity belongs to at most one contact per domain.';
CREATE UNIQUE INDEX contact_messaging_channels_identity_key
    ON contact_messaging_channels (domain_id, protocol, external_user_id);
CREATE INDEX contact_messaging_channels_contact_idx ON contact_messaging_channels (contact_id);

CREATE TABLE contact_create_requests (
    domain_id    bigint      NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    request_id   text        NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    fingerprint  text        NOT NULL,
    contact_id   bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, request_id),
    FOREIGN KEY (domain_id, contact_id) REFERENCES contacts (domain_id, id) ON DELETE SET NULL (contact_id)
);
COMMENT ON TABLE contact_create_requests IS 'Idempotency of CreateContact: a retried request_id returns the contact it created.';
COMMENT ON COLUMN contact_create_requests.fingerprint IS 'The validated request as canonical JSON: the same request_id with another body is refused.';

CREATE TABLE interactions (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id              bigint      NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    external_id            text        NOT NULL CHECK (length(external_id) BETWEEN 1 AND 128),
    kind                   text        NOT NULL CHECK (kind IN ('call', 'chat')),
    direction              text        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    state                  text        NOT NULL CHECK (state IN ('offered', 'accepted', 'closed')),
    agent_id               bigint      NOT NULL,
    queue_id               text,
    queue_name             text,
    member_id              text,
    member_description     text,
    variables              jsonb       NOT NULL DEFAULT '[]',
    caller_number          text,
    caller_hidden          boolean     NOT NULL DEFAULT false,
    caller_e164            text,
    chat_protocol          text,
    chat_external_user_id  text,
    chat_display_name      text,
    outcome                text        NOT NULL CHECK (outcome IN ('not_found', 'identified', 'ambiguous')),
    outcome_reason         text        NOT NULL DEFAULT '',
    candidates             jsonb       NOT NULL DEFAULT '[]',
    bound_contact_id       bigint,
    offered_at             timestamptz NOT NULL,
    accepted_at            timestamptz,
    closed_at              timestamptz,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, external_id),
    UNIQUE (domain_id, id),
    FOREIGN KEY (domain_id, agent_id) REFERENCES users (domain_id, id),
    FOREIGN KEY (domain_id, bound_contact_id) REFERENCES contacts (domain_id, id) ON DELETE SET NULL (bound_contact_id)
);
COMMENT ON TABLE interactions IS 'Calls and chats offered to agents by routing, with their identification result.';
COMMENT ON COLUMN interactions.external_id IS 'The routing system''s own interaction id: the idempotency key of OfferInteraction.';
COMMENT ON COLUMN interactions.variables IS 'Routing variables as an ordered JSON array of {"key", "value"} objects.';
COMMENT ON COLUMN interactions.candidates IS 'Identification candidates as a JSON array of {"contact_id", "exact", "matches"} in display order.';
CREATE INDEX interactions_agent_open_idx ON interactions (domain_id, agent_id) WHERE state <> 'closed';

CREATE TABLE interaction_bindings (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id       bigint      NOT NULL,
    interaction_id  bigint      NOT NULL,
    contact_id      bigint      NOT NULL,
    bound_by        bigint,
    bound_at        timestamptz NOT NULL DEFAULT now(),
    unbound_by      bigint,
    unbound_at      timestamptz,
    FOREIGN KEY (domain_id, interaction_id) REFERENCES interactions (domain_id, id) ON DELETE CASCADE,
    FOREIGN KEY (domain_id, contact_id) REFERENCES contacts (domain_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE interaction_bindings IS 'History of which contact an interaction was bound to, by whom and when; bound_by is NULL for autolink.';
CREATE INDEX interaction_bindings_contact_idx ON interaction_bindings (contact_id, bound_at DESC, id DESC);
CREATE UNIQUE INDEX interaction_bindings_current_key ON interaction_bindings (interaction_id) WHERE unbound_at IS NULL;

CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id       bigint      NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    actor_id        bigint      NOT NULL,
    action          text        NOT NULL,
    contact_id      bigint      NOT NULL,
    interaction_id  text,
    before          jsonb,
    after           jsonb
);
COMMENT ON TABLE audit_log IS 'Who changed which contact, when, and the state before and after. Kept after the contact is deleted (no foreign key on contact_id).';
CREATE INDEX audit_log_contact_idx ON audit_log (domain_id, contact_id, id DESC);
