// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "xid8", schema = "pg_catalog"))]
    pub struct Xid8;
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        domain_id -> Int8,
        occurred_at -> Timestamptz,
        actor_id -> Int8,
        action -> Text,
        contact_id -> Int8,
        interaction_id -> Nullable<Text>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
    }
}

diesel::table! {
    contact_attributes (contact_id, key) {
        domain_id -> Int8,
        contact_id -> Int8,
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Xid8;

    contact_changes (domain_id, sequence) {
        domain_id -> Int8,
        sequence -> Int8,
        occurred_at -> Timestamptz,
        contact_id -> Int8,
        payload -> Bytea,
        xid -> Xid8,
    }
}

diesel::table! {
    contact_create_requests (domain_id, request_id) {
        domain_id -> Int8,
        request_id -> Text,
        fingerprint -> Text,
        contact_id -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    contact_emails (id) {
        id -> Int8,
        domain_id -> Int8,
        contact_id -> Int8,
        address -> Text,
        normalized -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    contact_labels (contact_id, label_id) {
        domain_id -> Int8,
        contact_id -> Int8,
        label_id -> Int8,
    }
}

diesel::table! {
    contact_merges (id) {
        id -> Int8,
        domain_id -> Int8,
        survivor_id -> Int8,
        merged_ids -> Array<Nullable<Int8>>,
        merged_by -> Int8,
        merged_at -> Timestamptz,
        archive -> Jsonb,
        undone_at -> Nullable<Timestamptz>,
        undone_by -> Nullable<Int8>,
        erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    contact_messaging_channels (id) {
        id -> Int8,
        domain_id -> Int8,
        contact_id -> Int8,
        protocol -> Text,
        external_user_id -> Text,
        display_name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    contact_name_vocabulary (domain_id, word) {
        domain_id -> Int8,
        word -> Text,
    }
}

diesel::table! {
    contact_name_words (domain_id, word, contact_id) {
        domain_id -> Int8,
        word -> Text,
        contact_id -> Int8,
        later -> Bool,
    }
}

diesel::table! {
    contact_phones (id) {
        id -> Int8,
        domain_id -> Int8,
        contact_id -> Int8,
        number -> Text,
        e164 -> Text,
        region -> Text,
        national_number -> Text,
        digits_reversed -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    contacts (id) {
        id -> Int8,
        domain_id -> Int8,
        display_name -> Text,
        description -> Text,
        time_zone -> Text,
        owner_id -> Int8,
        version -> Int8,
        created_at -> Timestamptz,
        created_by -> Int8,
        updated_at -> Timestamptz,
        updated_by -> Int8,
        last_active_at -> Timestamptz,
        name_search -> Nullable<Text>,
        links_revoked_before -> Nullable<Timestamptz>,
        change_position -> Int8,
    }
}

diesel::table! {
    domain_event_counters (domain_id) {
        domain_id -> Int8,
        last_sequence -> Int8,
        pruned_through -> Int8,
        changes_pruned_through -> Int8,
    }
}

diesel::table! {
    domains (id) {
        id -> Int8,
        name -> Text,
        default_region -> Text,
        autolink -> Bool,
        fallback_digits -> Int2,
        created_at -> Timestamptz,
        external_key -> Nullable<Text>,
        autolink_shared_numbers -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Xid8;

    events (domain_id, sequence) {
        domain_id -> Int8,
        sequence -> Int8,
        occurred_at -> Timestamptz,
        agent_ids -> Array<Nullable<Int8>>,
        payload -> Bytea,
        xid -> Xid8,
    }
}

diesel::table! {
    interaction_bindings (id) {
        id -> Int8,
        domain_id -> Int8,
        interaction_id -> Int8,
        contact_id -> Int8,
        bound_by -> Nullable<Int8>,
        bound_at -> Timestamptz,
        unbound_by -> Nullable<Int8>,
        unbound_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    interactions (id) {
        id -> Int8,
        domain_id -> Int8,
        external_id -> Text,
        kind -> Text,
        direction -> Text,
        state -> Text,
        agent_id -> Int8,
        queue_id -> Nullable<Text>,
        queue_name -> Nullable<Text>,
        member_id -> Nullable<Text>,
        member_description -> Nullable<Text>,
        variables -> Jsonb,
        caller_number -> Nullable<Text>,
        caller_hidden -> Bool,
        caller_e164 -> Nullable<Text>,
        chat_protocol -> Nullable<Text>,
        chat_external_user_id -> Nullable<Text>,
        chat_display_name -> Nullable<Text>,
        outcome -> Text,
        outcome_reason -> Text,
        candidates -> Jsonb,
        bound_contact_id -> Nullable<Int8>,
        offered_at -> Timestamptz,
        accepted_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    labels (id) {
        id -> Int8,
        domain_id -> Int8,
        name -> Text,
    }
}

diesel::table! {
    merged_contacts (contact_id) {
        contact_id -> Int8,
        domain_id -> Int8,
        merge_id -> Int8,
        survivor_id -> Int8,
    }
}

diesel::table! {
    read_only_links (id) {
        id -> Int8,
        domain_id -> Int8,
        contact_id -> Int8,
        created_by -> Int8,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by -> Nullable<Int8>,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        domain_id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
        external_subject -> Nullable<Text>,
        email -> Nullable<Text>,
    }
}

diesel::joinable!(audit_log -> domains (domain_id));
diesel::joinable!(contact_changes -> domains (domain_id));
diesel::joinable!(contact_create_requests -> domains (domain_id));
diesel::joinable!(contact_merges -> domains (domain_id));
diesel::joinable!(contacts -> domains (domain_id));
diesel::joinable!(domain_event_counters -> domains (domain_id));
diesel::joinable!(events -> domains (domain_id));
diesel::joinable!(interactions -> domains (domain_id));
diesel::joinable!(labels -> domains (domain_id));
diesel::joinable!(read_only_links -> domains (domain_id));
diesel::joinable!(users -> domains (domain_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_log,
    contact_attributes,
    contact_changes,
    contact_create_requests,
    contact_emails,
    contact_labels,
    contact_merges,
    contact_messaging_channels,
    contact_name_vocabulary,
    contact_name_words,
    contact_phones,
    contacts,
    domain_event_counters,
    domains,
    events,
    interaction_bindings,
    interactions,
    labels,
    merged_contacts,
    read_only_links,
    users,
);
