DROP INDEX contacts_change_position_idx;
ALTER TABLE contacts DROP COLUMN change_position;
ALTER TABLE domain_event_counters DROP COLUMN changes_pruned_through;
DROP TABLE contact_changes;
