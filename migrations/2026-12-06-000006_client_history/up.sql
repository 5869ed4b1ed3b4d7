-- The client's recent history in the panel: a contact's ended interactions, newest first (the
-- last one that ended, the count of the last 30 days) read from one index range, however many
-- interactions the domain holds. Open ones come from interactions_open_bound_idx; this index
-- holds closed ones only, so that lookups of open interactions never pick it.
CREATE INDEX interactions_contact_history_idx ON interactions (domain_id, bound_contact_id, offered_at DESC)
    WHERE state = 'closed' AND bound_contact_id IS NOT NULL;
