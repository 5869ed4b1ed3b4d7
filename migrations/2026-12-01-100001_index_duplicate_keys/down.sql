DROP INDEX contact_messaging_channels_phone_idx;
DROP FUNCTION phone_shaped_identity(text);
