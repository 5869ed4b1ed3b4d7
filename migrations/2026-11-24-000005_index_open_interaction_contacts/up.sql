-- Which agents show a contact that just changed: the open interactions that have it bound or
-- among their identification candidates. Without these indexes every contact change read every
-- open interaction of the domain and parsed its candidates (see db/outbox.rs, CONCERNED_AGENTS_SQL).

-- The contact ids of a candidates array (`[{"contact_id": 1, ...}, ...]`).
CREATE FUNCTION interaction_candidate_ids(candidates jsonb) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(array_agg((c->>'contact_id')::bigint), '{}')
          FROM jsonb_array_elements(candidates) c $$;

CREATE INDEX interactions_open_candidates_idx ON interactions
    USING gin (interaction_candidate_ids(candidates)) WHERE state <> 'closed';

CREATE INDEX interactions_open_bound_idx ON interactions (bound_contact_id)
    WHERE state <> 'closed' AND bound_contact_id IS NOT NULL;
