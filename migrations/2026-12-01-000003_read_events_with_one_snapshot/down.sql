-- The functions of migration order_events_by_transaction, as they were.
-- The horizon of this database: the oldest transaction of this database still running (or the
-- snapshot's xmax when none is). Transactions of other databases on the cluster do not
-- hold it back. The snapshot is taken before the running transactions are read, so every
-- transaction below the horizon had ended before the caller's next statement starts.
-- (pg_stat_activity shows the transactions of the same role, or of all roles to members of
-- pg_read_all_stats: the server's role writes all the events.)
CREATE FUNCTION client_info_event_horizon() RETURNS xid8
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    xmax8 bigint := pg_snapshot_xmax(pg_current_snapshot())::text::bigint;
    oldest   bigint;
BEGIN
    -- backend_xid is 32 bits: put it in the epoch that brings it nearest the snapshot's xmax
    -- (running transactions can be on either side of xmax, never 2^31 away).
    SELECT min(CASE WHEN r.x - (xmax8 & 4294967295) > 2147483648
                    THEN (((xmax8 >> 32) - 1) << 32) | r.x
                    WHEN (xmax8 & 4294967295) - r.x > 2147483648
                    THEN (((xmax8 >> 32) + 1) << 32) | r.x
                    ELSE ((xmax8 >> 32) << 32) | r.x END)
      INTO oldest
      FROM (SELECT backend_xid::text::bigint AS x FROM pg_stat_activity
             WHERE datname = current_database() AND backend_xid IS NOT NULL
            UNION ALL
            SELECT transaction::text::bigint FROM pg_prepared_xacts
             WHERE database = current_database()) r;
    RETURN least(xmax8, coalesce(oldest, xmax8))::text::xid8;
END $$;
COMMENT ON FUNCTION client_info_event_horizon() IS 'Events of transactions below this can be delivered: no transaction of this database below it can still commit.';

-- Events of a domain after a sequence, in order, each marked ready when below the horizon
-- (computed first; RETURN QUERY then reads with a newer snapshot, which sees every
-- transaction below the horizon as ended).
CREATE FUNCTION client_info_events_since(p_domain bigint, p_after bigint, p_agent bigint, p_limit bigint)
RETURNS TABLE (domain_id bigint, sequence bigint, occurred_at timestamptz, agent_ids bigint[],
               payload bytea, ready boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon xid8 := client_info_event_horizon();
BEGIN
    RETURN QUERY
        SELECT e.domain_id, e.sequence, e.occurred_at, e.agent_ids, e.payload, e.xid < horizon
          FROM events e
         WHERE e.domain_id = p_domain AND e.sequence > p_after
           AND (p_agent = 0 OR e.agent_ids @> ARRAY[p_agent])
         ORDER BY e.sequence
         LIMIT p_limit;
END $$;

-- The last deliverable sequence of a domain (pruned events count) and its pruned-through mark.
CREATE FUNCTION client_info_event_position(p_domain bigint, OUT last bigint, OUT pruned bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon xid8 := client_info_event_horizon();
BEGIN
    SELECT coalesce((SELECT c.pruned_through FROM domain_event_counters c
                      WHERE c.domain_id = p_domain), 0) INTO pruned;
    SELECT greatest(pruned, coalesce((SELECT e.sequence FROM events e
                                       WHERE e.domain_id = p_domain AND e.xid < horizon
                                       ORDER BY e.sequence DESC LIMIT 1), 0)) INTO last;
END $$;
COMMENT ON COLUMN events.xid IS 'The writing transaction: the event is delivered once no transaction older than it can still commit.';
