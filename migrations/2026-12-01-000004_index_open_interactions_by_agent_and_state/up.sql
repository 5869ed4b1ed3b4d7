-- An agent's open interactions are looked up by their states, not by "not closed": the
-- lookups of the agents concerned with a contact ("not closed", by contact) must be served
-- by the two contact indexes of open interactions, and while the agent index's predicate was
-- also "not closed", the planner could walk that whole index instead whenever its statistics
-- predated the day's open interactions (with autovacuum off, or before autoanalyze ran): a
-- cost that grew with every interaction left open (see server/src/db/tx.rs).
DROP INDEX interactions_agent_open_idx;
CREATE INDEX interactions_agent_open_idx ON interactions (domain_id, agent_id)
    WHERE state IN ('offered', 'accepted');
COMMENT ON INDEX interactions_agent_open_idx IS 'An agent''s open interactions (the session snapshot); by state, so that lookups by contact cannot use it.';
