-- A domain's match policy: whether autolink may bind on a caller's number that more than one
-- contact holds (a switchboard), when a key from routing picked one of them.
ALTER TABLE domains ADD COLUMN autolink_shared_numbers boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN domains.autolink_shared_numbers IS 'With autolink: bind on a single exact match even when the caller''s number is held by more than one contact (false: never on such numbers).';
