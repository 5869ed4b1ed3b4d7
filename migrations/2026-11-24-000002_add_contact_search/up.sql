-- Contact search: accent- and case-insensitive, typo-tolerant names (pg_trgm + unaccent), digit
-- runs inside phone numbers, and attribute presence, each served by an index.
-- The trigram indexes hold the text alone: a domain_id key in a GIN index (btree_gin) would have
-- one posting list as long as the domain, which every lookup would have to intersect; the
-- domain is checked on the few rows the trigrams find instead.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (its dictionary could change); pinning the dictionary makes it safe
-- to use in a stored generated column.
CREATE FUNCTION immutable_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$;
COMMENT ON FUNCTION immutable_unaccent(text) IS 'unaccent with a fixed dictionary, usable in indexes and generated columns.';

ALTER TABLE contacts
    ADD COLUMN name_search text GENERATED ALWAYS AS (lower(immutable_unaccent(display_name))) STORED;
COMMENT ON COLUMN contacts.name_search IS 'Lower-cased, unaccented display name: what name search matches.';

CREATE INDEX contacts_name_trgm_idx ON contacts USING gin (name_search gin_trgm_ops);
CREATE INDEX contact_phones_e164_trgm_idx ON contact_phones USING gin (e164 gin_trgm_ops);
CREATE INDEX contact_attributes_key_idx ON contact_attributes (domain_id, key, contact_id);
CREATE INDEX labels_name_lower_idx ON labels (domain_id, lower(name) text_pattern_ops);
