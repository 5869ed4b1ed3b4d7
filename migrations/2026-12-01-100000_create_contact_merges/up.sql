-- Merges of duplicate contacts. A merge moves the communications, labels, attributes and
-- interaction history of the merged contacts onto the survivor and deletes their rows, so
-- identification and search cannot return them; what an undo needs to restore them is kept in
-- the merge's archive. See server/src/db/merge.rs.

CREATE TABLE contact_merges (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id    bigint      NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    survivor_id  bigint      NOT NULL,
    merged_ids   bigint[]    NOT NULL CHECK (cardinality(merged_ids) BETWEEN 1 AND 9),
    merged_by    bigint      NOT NULL,
    merged_at    timestamptz NOT NULL DEFAULT now(),
    archive      jsonb       NOT NULL,
    undone_at    timestamptz,
    undone_by    bigint,
    UNIQUE (domain_id, id),
    FOREIGN KEY (domain_id, merged_by) REFERENCES users (domain_id, id),
    FOREIGN KEY (domain_id, undone_by) REFERENCES users (domain_id, id),
    CHECK ((undone_at IS NULL) = (undone_by IS NULL))
);
COMMENT ON TABLE contact_merges IS 'One row per MergeContacts: who merged which contacts into which survivor, and what UnmergeContacts needs to restore them.';
COMMENT ON COLUMN contact_merges.survivor_id IS 'The contact that took the others in (no foreign key: the record outlives a later delete).';
COMMENT ON COLUMN contact_merges.merged_ids IS 'The contacts merged into the survivor; their rows were deleted.';
COMMENT ON COLUMN contact_merges.archive IS 'The merged contacts as they were (fields, labels, attributes, communications with their link ids, binding ids, create request ids), the survivor before and after, and the open interactions whose candidates changed (JSON, see db/merge.rs).';
COMMENT ON COLUMN contact_merges.undone_at IS 'When UnmergeContacts restored the merged contacts; NULL while the merge holds.';

CREATE TABLE merged_contacts (
    contact_id   bigint PRIMARY KEY,
    domain_id    bigint NOT NULL,
    merge_id     bigint NOT NULL,
    survivor_id  bigint NOT NULL,
    FOREIGN KEY (domain_id, merge_id) REFERENCES contact_merges (domain_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE merged_contacts IS 'Contact ids that were merged into another and not restored since: reads of them answer NOT_FOUND with reason CONTACT_MERGED and the survivor.';
COMMENT ON COLUMN merged_contacts.survivor_id IS 'The survivor of that merge (itself possibly merged since: follow the chain).';
CREATE INDEX merged_contacts_merge_idx ON merged_contacts (merge_id);

-- A merge points the create requests of the merged contacts at the survivor (and an undo points
-- them back), and deleting a contact sets NULL in them: both find them by contact.
CREATE INDEX contact_create_requests_contact_idx ON contact_create_requests (contact_id)
    WHERE contact_id IS NOT NULL;
