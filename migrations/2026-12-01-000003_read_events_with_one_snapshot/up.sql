-- Events are now read by one plain statement whose single snapshot both decides the horizon
-- (pg_current_snapshot() is the statement's snapshot) and reads the events, so the functions
-- that computed the horizon from pg_stat_activity and read with a second snapshot go. See
-- server/src/db/outbox.rs for the reasoning.
DROP FUNCTION client_info_event_position(bigint);
DROP FUNCTION client_info_events_since(bigint, bigint, bigint, bigint);
DROP FUNCTION client_info_event_horizon();

COMMENT ON COLUMN events.xid IS 'The writing transaction (sequence >> 16): the event is delivered once the reading snapshot shows no transaction of this database older than it running.';
