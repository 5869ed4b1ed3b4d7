//! The scenarios `run` drives ([`Scenario`]): what each one loads, its name on the command
//! line and whether it writes. A plain type shared by the run's drivers (`run/`) and the SQL
//! floor (`floor.rs`, `replay.rs`); it imports nothing of the crate.

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// OfferInteraction of calls from stored numbers in varied formats (identification).
    Offer,
    /// OfferInteraction as `offer`, each with an identification key the caller "entered in
    /// the IVR" (the contact's crm_id attribute), tried before the number.
    OfferKeys,
    /// GetClientInfo of offered interactions.
    ClientInfo,
    /// SearchContacts by a phone number in varied formats.
    SearchDestination,
    /// SearchContacts by attribute crm_id=... (exact).
    SearchAttribute,
    /// SearchContacts by a full name.
    SearchName,
    /// SearchContacts by a first name alone (each starts a twenty-fourth of the names).
    SearchFirstName,
    /// SearchContacts by a surname alone (a later word; O'Brien with punctuation).
    SearchSurname,
    /// SearchContacts by a typo of a first name or a surname alone (a swap, a dropped, a
    /// changed or an added letter: "Ameila", "Amlia", "Amxlia", "Amexlia").
    SearchTypo,
    /// SearchContacts by a full name with a typo in each word of 5 letters or more ("Amlia
    /// Smiht"): the contacts holding a match of each word, intersected and ranked.
    SearchNameTypo,
    /// SearchContacts by a name that matches nobody ("qxzvkw"): every band, the vocabulary
    /// lookup, nothing found.
    SearchNothing,
    /// CreateContact from an accepted chat whose identity another contact holds (relink);
    /// closed loop times only the create, open loop the whole offer-accept-create cycle from
    /// its intended start.
    CreateRelink,
    /// WatchAgentSession fan-out: streams held, offers generated; commit-to-delivery latency.
    Watch,
    /// WatchContactChanges: CRM consumers (and slow ones) following a bulk import flat out;
    /// changes/s delivered, write-to-delivery lag, catch-up time, the server's memory.
    Changes,
}

impl Scenario {
    /// The name on the command line.
    pub(crate) fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_else(|| format!("{self:?}"))
    }

    /// Whether it has its own driver, not the RPC phases (`run/watch.rs`, `run/changes.rs`).
    pub(crate) fn streams(self) -> bool {
        matches!(self, Scenario::Watch | Scenario::Changes)
    }

    /// Whether it writes (and so leaves dead rows for the next measurement to vacuum).
    pub(crate) fn writes(self) -> bool {
        matches!(
            self,
            Scenario::Offer
                | Scenario::OfferKeys
                | Scenario::CreateRelink
                | Scenario::Watch
                | Scenario::Changes
        )
    }
}
