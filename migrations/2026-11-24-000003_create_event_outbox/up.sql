-- The event outbox: every change an agent's session stream shows is written here in the same
-- transaction as the change, and announced with NOTIFY client_info_events. Servers fan events
-- out to the agents named in `agent_ids`; a reconnecting client replays from its last sequence.

CREATE TABLE domain_event_counters (
    domain_id        bigint PRIMARY KEY REFERENCES domains (id) ON DELETE CASCADE,
    last_sequence    bigint NOT NULL DEFAULT 0,
    pruned_through   bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE domain_event_counters IS 'Per-domain event sequence. Writers raise last_sequence as the last step of their transaction; its row lock makes commit order equal sequence order, so a reader that has seen N has seen everything below N.';
COMMENT ON COLUMN domain_event_counters.pruned_through IS 'Events up to this sequence were pruned: resuming from before it is OUT_OF_RANGE.';

CREATE TABLE events (
    domain_id    bigint      NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    sequence     bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    agent_ids    bigint[]    NOT NULL,
    payload      bytea       NOT NULL,
    PRIMARY KEY (domain_id, sequence)
);
COMMENT ON TABLE events IS 'Outbox of agent session events (clientinfo.v1.AgentEvent, protobuf-encoded, rendered with full cards; servers reduce them per watcher).';
COMMENT ON COLUMN events.occurred_at IS 'Wall-clock time of the insert, the last statement before commit (not the transaction start), so delivery latency can be measured against it.';
COMMENT ON COLUMN events.agent_ids IS 'The agents the event concerns: only their streams receive it.';
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
