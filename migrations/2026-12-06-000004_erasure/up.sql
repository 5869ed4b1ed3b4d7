-- EraseContact: a merge whose archive held an erased contact's data keeps its record (who,
-- when, which contacts) but not the archive, and can no longer be undone.
ALTER TABLE contact_merges ADD COLUMN erased_at timestamptz;
COMMENT ON COLUMN contact_merges.erased_at IS 'When EraseContact emptied this merge''s archive (it held the erased contact''s data): the merge can no longer be undone. NULL: intact.';
