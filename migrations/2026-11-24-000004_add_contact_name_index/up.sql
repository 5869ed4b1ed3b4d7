-- Exact full-name matches in id order: a name shared by thousands of contacts pages straight
-- off this index instead of ranking every match (see db/search.rs, NameTier::Exact).
CREATE INDEX contacts_name_exact_idx ON contacts (domain_id, name_search, id);
