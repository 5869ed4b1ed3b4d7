DROP INDEX interactions_agent_open_idx;
CREATE INDEX interactions_agent_open_idx ON interactions (domain_id, agent_id) WHERE state <> 'closed';
