ALTER TABLE contacts DROP COLUMN links_revoked_before;
DROP TABLE read_only_links;
