-- Typos by edit distance (issue 29): a word of a name of 5 letters or more forgives one typo
-- in the query word typed for it, from 9 letters two (an insertion, a deletion, a
-- substitution or a swap of neighbouring letters each count as one), Meilisearch's
-- thresholds (counted on the name's word: see domain::search::typos_allowed).
--
-- Found from an index by the symmetric-deletion method (SymSpell): two words are within k
-- edits only if some string made by deleting at most k letters from each is the same. Each
-- distinct word of a domain's names is stored with every string made by deleting up to as
-- many letters as it forgives typos (1 from 5 letters, 2 from 9); a query word's deletions
-- (1 from 4 letters, 2 from 7: a query word one typo from a word of 5 letters has at least 4,
-- two from one of 9 at least 7) are looked up in that index, and the few words found are
-- checked by their exact distance in the server (db/search.rs). A word of 9 letters has 46
-- such strings, one of 6 has 7.
--
-- Replaces the trigram match of words and of whole names (contact_name_vocabulary_trgm_idx,
-- pg_trgm's word similarity), which missed a dropped letter or two swapped ones in short
-- names, ranked longer names above the intended one, and took tens of milliseconds to find
-- nothing in a large domain.

-- The strings made by deleting up to `typos` (0 to 2) characters from `word`, the word first
-- (a repeated letter gives the same string more than once). PL/pgSQL: as a SQL set-returning
-- function (a CTE and generate_series) it took 7 ms a call, planned at every call.
CREATE FUNCTION name_word_deletions(word text, typos integer) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
    AS $$
DECLARE
    out text[] := ARRAY[word];
    n integer := length(word);
    one text;
BEGIN
    IF typos >= 1 THEN
        FOR i IN 1 .. n LOOP
            one := left(word, i - 1) || substr(word, i + 1);
            out := out || one;
            IF typos >= 2 THEN
                FOR j IN i .. n - 1 LOOP
                    out := out || (left(one, j - 1) || substr(one, j + 1));
                END LOOP;
            END IF;
        END LOOP;
    END IF;
    RETURN out;
END
$$;
COMMENT ON FUNCTION name_word_deletions(text, integer) IS 'The strings made by deleting up to typos characters from word, word first.';

-- The deletion variants indexed for a word of a name: as many deletions as it forgives typos
-- (domain::search::typos_allowed says the same).
CREATE FUNCTION name_word_variants(word text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT name_word_deletions(word, CASE WHEN length(word) >= 9 THEN 2
                                               WHEN length(word) >= 5 THEN 1 ELSE 0 END) $$;
COMMENT ON FUNCTION name_word_variants(text) IS 'The deletion variants indexed for a word of a name: 1 deletion from 5 characters, 2 from 9.';

-- How many deletions of a query word are looked up: as many as a word of a name it could be a
-- typo of forgives.
CREATE FUNCTION name_query_deletions(word text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT CASE WHEN length(word) >= 7 THEN 2 WHEN length(word) >= 4 THEN 1 ELSE 0 END $$;
COMMENT ON FUNCTION name_query_deletions(text) IS 'The deletions of a query word looked up: 1 from 4 characters, 2 from 7.';

CREATE TABLE contact_name_variants (
    domain_id  bigint NOT NULL,
    variant    text   COLLATE "C" NOT NULL,
    word       text   COLLATE "C" NOT NULL,
    PRIMARY KEY (domain_id, variant, word)
);
COMMENT ON TABLE contact_name_variants IS 'Each word of the domain''s name vocabulary under each of its deletion variants (name_word_variants): the words within a query word''s typos are among those sharing a variant with it.';

INSERT INTO contact_name_variants (domain_id, variant, word)
    SELECT DISTINCT v.domain_id, x.variant, v.word
    FROM contact_name_vocabulary v, unnest(name_word_variants(v.word)) x (variant);

DROP INDEX contact_name_vocabulary_trgm_idx;

-- The triggers add a word's variants when the word enters the vocabulary (the vocabulary
-- insert returns only the words that are new, so a common word costs nothing more).
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
    ), new_words AS (
        INSERT INTO contact_name_vocabulary (domain_id, word)
            SELECT DISTINCT domain_id, word FROM words ORDER BY 1, 2
            ON CONFLICT DO NOTHING
            RETURNING domain_id, word
    )
    INSERT INTO contact_name_variants (domain_id, variant, word)
        SELECT DISTINCT n.domain_id, x.variant, n.word
        FROM new_words n, unnest(name_word_variants(n.word)) x (variant)
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
    ), new_words AS (
        INSERT INTO contact_name_vocabulary (domain_id, word)
            SELECT DISTINCT NEW.domain_id, word FROM words ORDER BY 2
            ON CONFLICT DO NOTHING
            RETURNING domain_id, word
    )
    INSERT INTO contact_name_variants (domain_id, variant, word)
        SELECT DISTINCT n.domain_id, x.variant, n.word
        FROM new_words n, unnest(name_word_variants(n.word)) x (variant)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
