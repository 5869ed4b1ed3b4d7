-- Writers no longer number events: they insert them unnumbered (no lock, no waiting on each
-- other), and a single sequencer at a time numbers the committed ones per domain. See
-- server/src/db/outbox.rs for the reasoning and the invariants.

ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE events ADD PRIMARY KEY (id);
ALTER TABLE events ALTER COLUMN sequence DROP NOT NULL;
CREATE UNIQUE INDEX events_domain_sequence_idx ON events (domain_id, sequence);
CREATE INDEX events_unsequenced_idx ON events (id) WHERE sequence IS NULL;

COMMENT ON COLUMN events.id IS 'Insert order: committed events are numbered in this order by the sequencer.';
COMMENT ON COLUMN events.sequence IS 'The per-domain number watchers resume from; NULL until the sequencer numbers the event, after its transaction committed.';
COMMENT ON TABLE domain_event_counters IS 'Per-domain event sequence. Only the sequencer (one at a time, under an advisory lock) raises last_sequence, numbering committed events in insert order; writers never touch it, so they never wait on each other.';
