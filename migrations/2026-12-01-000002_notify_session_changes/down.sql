DROP TRIGGER users_notify_sessions ON users;
DROP TRIGGER domains_notify_sessions ON domains;
DROP FUNCTION client_info_sessions_changed();
