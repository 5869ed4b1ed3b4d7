DROP INDEX contacts_name_exact_idx;
