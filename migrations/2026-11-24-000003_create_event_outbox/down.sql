DROP TABLE events;
DROP TABLE domain_event_counters;
