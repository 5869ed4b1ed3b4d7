-- Read-only links made with CreateReadOnlyLink are recorded, so they can be listed and
-- revoked one by one; every link of a contact (the short-lived ones shown in summary views,
-- which are not recorded, included) can be revoked at once through the contact's cut-off.
CREATE TABLE read_only_links (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id   bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    contact_id  bigint NOT NULL,
    created_by  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoked_by  bigint,
    UNIQUE (domain_id, id),
    FOREIGN KEY (domain_id, created_by) REFERENCES users (domain_id, id) ON DELETE CASCADE,
    FOREIGN KEY (domain_id, revoked_by) REFERENCES users (domain_id, id) ON DELETE SET NULL (revoked_by),
    CHECK (revoked_by IS NULL OR revoked_at IS NOT NULL)
);
CREATE INDEX read_only_links_contact ON read_only_links (domain_id, contact_id, id DESC);
COMMENT ON TABLE read_only_links IS 'Read-only card links made with CreateReadOnlyLink; the link token carries the id. No foreign key to contacts: a deleted or merged contact''s links stay listable until erased.';

ALTER TABLE contacts ADD COLUMN links_revoked_before timestamptz;
COMMENT ON COLUMN contacts.links_revoked_before IS 'Links to this contact issued before this instant are refused (RevokeReadOnlyLinks with all). NULL: none revoked so.';
