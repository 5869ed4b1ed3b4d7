-- Name search ranked by index (issue 15): every band of a name search that can be broad pages
-- straight off a btree in its result order instead of ranking every match (see db/search.rs).
--
-- * Whole names in byte order: equal names by id, then names that start with the query by
--   (name, id). Byte order ("C") keeps a prefix a contiguous range in any database locale, and
--   puts "amelia smith" before "ameliax" (separators sort below letters and digits).
-- * The words of every name (contact_name_words): a later word that starts with the query (a
--   surname alone) is a range of this index, and the contacts holding one word (the word a
--   typo resembles) are one key of it, in contact order.
-- * The distinct words of each domain (contact_name_vocabulary), trigram-indexed: a typo is
--   matched against a few thousand words, not against a million names.
--
-- A word is a run of characters from '0' (U+0030) up: spaces and the ASCII punctuation below
-- '0' (!"#$%&'()*+,-./) separate words, so "jean-pierre o'brien" has the words jean, pierre, o
-- and brien, and "word followed by a separator or the end" is the range [word, word || '0').
-- Triggers keep both tables in step with contacts.name_search; rows of deleted contacts are
-- removed by trigger (no foreign key: a cascade would need a second index on the large table).

CREATE FUNCTION name_words(name text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT array_remove(regexp_split_to_array(name, '[\x01-\x2f]+'), '') $$;
COMMENT ON FUNCTION name_words(text) IS 'The words of a normalised name, in order (runs of characters from U+0030 up).';

-- Where a query starts a later word of a name: the least (in byte order) word after the first
-- at whose start the name continues with prefix, or NULL. For a one-word prefix that is the
-- least later word starting with it; for "o'b" it is "o" when some later word is "o" followed
-- by "'b" ("amelia o'brien"). The general case walks the name (name_phrase_starting); a
-- one-word prefix, the common case, only compares words.
CREATE FUNCTION name_phrase_starting(name text, prefix text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
    AS $$
DECLARE
    best text;
    word text;
    first_seen boolean := false;
    after_separator boolean := true;
BEGIN
    FOR i IN 1 .. length(name) LOOP
        IF substr(name, i, 1) >= '0' COLLATE "C" THEN
            IF after_separator THEN
                IF first_seen AND starts_with(substr(name, i), prefix) THEN
                    word := substring(substr(name, i) FROM '^[^\x01-\x2f]+');
                    IF best IS NULL OR word < best COLLATE "C" THEN
                        best := word;
                    END IF;
                END IF;
                first_seen := true;
            END IF;
            after_separator := false;
        ELSE
            after_separator := true;
        END IF;
    END LOOP;
    RETURN best;
END
$$;
COMMENT ON FUNCTION name_phrase_starting(text, text) IS 'name_word_starting for any prefix, by walking the name.';

CREATE FUNCTION name_word_starting(name text, prefix text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT CASE WHEN prefix ~ '[\x01-\x2f]' THEN name_phrase_starting(name, prefix)
                      ELSE (SELECT min(w.word COLLATE "C")
                            FROM unnest(name_words(name)) WITH ORDINALITY AS w (word, ord)
                            WHERE w.ord > 1 AND starts_with(w.word, prefix)) END $$;
COMMENT ON FUNCTION name_word_starting(text, text) IS 'The least word after the first word of a name at whose start the name continues with prefix; NULL when there is none.';

-- A regular expression that a name matches when prefix follows a separator in it: a cheap
-- necessary condition of name_word_starting(name, prefix) IS NOT NULL. Statements compute it
-- once (as a scalar subquery) and test every row against it before calling that function.
CREATE FUNCTION name_word_pattern(prefix text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT '[\x01-\x2f]' || regexp_replace(prefix, '([^[:alnum:][:space:]])', '\\\1', 'g') $$;
COMMENT ON FUNCTION name_word_pattern(text) IS 'A regular expression matching names in which prefix follows a separator.';

CREATE TABLE contact_name_words (
    domain_id   bigint  NOT NULL,
    word        text    COLLATE "C" NOT NULL,
    contact_id  bigint  NOT NULL,
    later       boolean NOT NULL,
    PRIMARY KEY (domain_id, word, contact_id) INCLUDE (later)
);
COMMENT ON TABLE contact_name_words IS 'Each distinct word of each contact''s name_search (see name_words), kept by triggers on contacts: word search pages off its primary key.';
COMMENT ON COLUMN contact_name_words.later IS 'The word comes after the name''s first word (names that start with a query are found in contacts_name_order_idx instead).';

CREATE TABLE contact_name_vocabulary (
    domain_id  bigint NOT NULL,
    word       text   COLLATE "C" NOT NULL,
    PRIMARY KEY (domain_id, word)
);
COMMENT ON TABLE contact_name_vocabulary IS 'The distinct words of a domain''s contact names, for matching typos against words. Words are added by trigger and never removed (a word no contact holds any more only costs a lookup).';
CREATE INDEX contact_name_vocabulary_trgm_idx ON contact_name_vocabulary USING gin (word gin_trgm_ops);

-- Inserts the words of the rows in the transition table `named` (new or renamed contacts).
-- Vocabulary words are inserted in order, so concurrent writers adding the same new words
-- wait for each other instead of deadlocking.
CREATE FUNCTION contact_name_words_inserted() RETURNS trigger
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
COMMENT ON FUNCTION contact_name_words_inserted() IS 'Statement trigger: indexes the words of inserted contacts.';

CREATE FUNCTION contact_name_words_deleted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    DELETE FROM contact_name_words w
        USING unnamed o, unnest(name_words(o.name_search)) AS x (word)
        WHERE w.domain_id = o.domain_id AND w.word = x.word AND w.contact_id = o.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION contact_name_words_deleted() IS 'Statement trigger: drops the words of deleted contacts.';

CREATE FUNCTION contact_name_words_renamed() RETURNS trigger
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
COMMENT ON FUNCTION contact_name_words_renamed() IS 'Row trigger: re-indexes the words of a renamed contact.';

CREATE TRIGGER contacts_name_words_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS named
    FOR EACH STATEMENT EXECUTE FUNCTION contact_name_words_inserted();
CREATE TRIGGER contacts_name_words_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS unnamed
    FOR EACH STATEMENT EXECUTE FUNCTION contact_name_words_deleted();
CREATE TRIGGER contacts_name_words_rename AFTER UPDATE ON contacts
    FOR EACH ROW WHEN (OLD.name_search IS DISTINCT FROM NEW.name_search)
    EXECUTE FUNCTION contact_name_words_renamed();

INSERT INTO contact_name_words (domain_id, word, contact_id, later)
    SELECT c.domain_id, w.word, c.id, bool_or(w.ord > 1)
    FROM contacts c, unnest(name_words(c.name_search)) WITH ORDINALITY AS w (word, ord)
    GROUP BY 1, 2, 3;
INSERT INTO contact_name_vocabulary (domain_id, word)
    SELECT DISTINCT domain_id, word FROM contact_name_words;

-- Replaces contacts_name_exact_idx (domain, name, id): the same keys in byte order serve equal
-- names by id and prefixes by (name, id).
DROP INDEX contacts_name_exact_idx;
CREATE INDEX contacts_name_order_idx ON contacts (domain_id, (name_search COLLATE "C"), id);
COMMENT ON INDEX contacts_name_order_idx IS 'Names in byte order: equal names page by id, names starting with a query by (name, id).';
