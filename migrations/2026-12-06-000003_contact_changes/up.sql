-- The contact change feed (WatchContactChanges): every change to a domain's contacts, written
-- in the transaction of the change and numbered like the session events (the writing
-- transaction's id times 65,536 plus the change's ordinal in it; see server/src/db/outbox.rs),
-- so it is delivered once, in commit order, and resumable by number.
CREATE TABLE contact_changes (
    domain_id   bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    sequence    bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    contact_id  bigint NOT NULL,
    payload     bytea NOT NULL,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (domain_id, sequence)
);
CREATE INDEX contact_changes_occurred_at_idx ON contact_changes (occurred_at);
COMMENT ON TABLE contact_changes IS 'Contact changes for WatchContactChanges, kept --change-retention; the payload is a clientinfo.v1.ContactChange without its position.';

ALTER TABLE domain_event_counters
    ADD COLUMN changes_pruned_through bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN domain_event_counters.changes_pruned_through IS 'Contact changes up to this sequence were pruned: resuming the change feed from before it is OUT_OF_RANGE.';

-- The number of each contact's last change: ListContacts pages by it, so a consumer that
-- lost its place re-reads the domain in change order.
ALTER TABLE contacts ADD COLUMN change_position bigint NOT NULL DEFAULT 0;
CREATE INDEX contacts_change_position_idx ON contacts (domain_id, change_position, id);
