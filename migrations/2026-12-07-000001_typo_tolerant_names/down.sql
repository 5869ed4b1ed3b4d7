CREATE OR REPLACE FUNCTION contact_name_words_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    WITH words AS MATERIALIZED (
        SELECT n.domain_id, w.word, n.id, w.ord
        FROM named n, unnest(name_words(n.name_search)) WITH ORDINALITY AS w (word, ord)
    ), indexed AS (
        INSERT INTO contact_name_words (domain_id, word, contact_id, later)
            SELECT domain_id, word, id, bool_or(ord > 1) FROM words GROUP BY 1, 2, 3
    )
    INSERT INTO contact_name_vocabulary (domain_id, word)
        SELECT DISTINCT domain_id, word FROM words ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION contact_name_words_renamed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    DELETE FROM contact_name_words
        WHERE domain_id = OLD.domain_id AND contact_id = OLD.id
          AND word = ANY (name_words(OLD.name_search));
    WITH words AS MATERIALIZED (
        SELECT w.word, w.ord FROM unnest(name_words(NEW.name_search)) WITH ORDINALITY AS w (word, ord)
    ), indexed AS (
        INSERT INTO contact_name_words (domain_id, word, contact_id, later)
            SELECT NEW.domain_id, word, NEW.id, bool_or(ord > 1) FROM words GROUP BY word
    )
    INSERT INTO contact_name_vocabulary (domain_id, word)
        SELECT DISTINCT NEW.domain_id, word FROM words ORDER BY 2
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE INDEX contact_name_vocabulary_trgm_idx ON contact_name_vocabulary USING gin (word gin_trgm_ops);
DROP TABLE contact_name_variants;
DROP FUNCTION name_query_deletions(text);
DROP FUNCTION name_word_variants(text);
DROP FUNCTION name_word_deletions(text, integer);
