DROP INDEX labels_name_lower_idx;
DROP INDEX contact_attributes_key_idx;
DROP INDEX contact_phones_e164_trgm_idx;
DROP INDEX contacts_name_trgm_idx;
ALTER TABLE contacts DROP COLUMN name_search;
DROP FUNCTION immutable_unaccent(text);
DROP EXTENSION IF EXISTS unaccent;
DROP EXTENSION IF EXISTS pg_trgm;
