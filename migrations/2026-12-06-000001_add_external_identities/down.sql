ALTER TABLE users
    DROP CONSTRAINT users_domain_external_subject_key,
    DROP COLUMN email,
    DROP COLUMN external_subject;
ALTER TABLE domains DROP COLUMN external_key;
