ALTER TABLE domains DROP COLUMN autolink_shared_numbers;
