DROP INDEX interactions_open_bound_idx;
DROP INDEX interactions_open_candidates_idx;
DROP FUNCTION interaction_candidate_ids(jsonb);
