-- Servers cache each caller's domain settings and user (server/src/sessions.rs). Every change
-- to domains or users, from any server, the admin commands or plain SQL, is announced on the
-- channel client_info_sessions at commit, and every server's event listener empties its cache
-- when it hears it. Inserts change no cached row and are not announced.
CREATE FUNCTION client_info_sessions_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('client_info_sessions', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION client_info_sessions_changed() IS 'Statement trigger: announces a change to domains or users on client_info_sessions (servers empty their session caches).';

CREATE TRIGGER domains_notify_sessions AFTER UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION client_info_sessions_changed();
CREATE TRIGGER users_notify_sessions AFTER UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION client_info_sessions_changed();
