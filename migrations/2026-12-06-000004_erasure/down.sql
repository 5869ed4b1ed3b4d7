ALTER TABLE contact_merges DROP COLUMN erased_at;
