DROP FUNCTION client_info_event_position(bigint);
DROP FUNCTION client_info_events_since(bigint, bigint, bigint, bigint);
DROP FUNCTION client_info_event_horizon();
ALTER TABLE events DROP COLUMN xid;
COMMENT ON COLUMN events.sequence IS NULL;
COMMENT ON TABLE domain_event_counters IS 'Per-domain event sequence. Writers raise last_sequence as the last step of their transaction; its row lock makes commit order equal sequence order, so a reader that has seen N has seen everything below N.';
