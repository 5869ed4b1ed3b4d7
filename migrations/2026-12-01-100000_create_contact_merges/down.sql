DROP INDEX contact_create_requests_contact_idx;
DROP TABLE merged_contacts;
DROP TABLE contact_merges;
