DELETE FROM events WHERE sequence IS NULL;
DROP INDEX events_unsequenced_idx;
DROP INDEX events_domain_sequence_idx;
ALTER TABLE events ALTER COLUMN sequence SET NOT NULL;
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events DROP COLUMN id;
ALTER TABLE events ADD PRIMARY KEY (domain_id, sequence);
COMMENT ON TABLE domain_event_counters IS 'Per-domain event sequence. Writers raise last_sequence as the last step of their transaction; its row lock makes commit order equal sequence order, so a reader that has seen N has seen everything below N.';
