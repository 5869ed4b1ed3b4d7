-- FindDuplicates: messaging identities whose user id is a phone number (WhatsApp, Viber and
-- the like) are compared with the phones of other contacts, in E.164 order, through this index
-- (see server/src/db/duplicates.rs).
CREATE FUNCTION phone_shaped_identity(external_user_id text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT CASE WHEN external_user_id ~ '^\+?[1-9][0-9]{6,14}$'
                      THEN '+' || ltrim(external_user_id, '+') END $$;
COMMENT ON FUNCTION phone_shaped_identity(text) IS 'The E.164 form of a messaging user id that is a phone number (7 to 15 digits, + optional), else NULL.';

CREATE INDEX contact_messaging_channels_phone_idx
    ON contact_messaging_channels (domain_id, phone_shaped_identity(external_user_id))
    WHERE phone_shaped_identity(external_user_id) IS NOT NULL;
