//! Transparent huge pages off for the serving process.
//!
//! mimalloc (the binary's allocator) asks the kernel for transparent huge pages on its arena
//! (`madvise(MADV_HUGEPAGE)`), so on a kernel whose THP setting is `madvise` (Debian's default)
//! or `always`, every 2 MiB of the arena the server touches becomes a huge page: whole at the
//! first fault, or later when `khugepaged` collapses a range that holds as little as one used
//! 4 KiB page. With 1,000 session streams that was 130 MiB of RSS against 84 without, while
//! the live heap was 70 MiB (heaptrack), and on busy machines a step of 7 to 25 MiB some 10
//! to 25 minutes after start (probably faults that had found no free huge page, collapsed
//! later: BENCHMARKS.md, runs U to Y). A server of about a hundred megabytes of small
//! allocations gains little from huge pages, and its operator wants a memory figure that does
//! not move by itself, so the server turns them off for itself first thing at start with
//! `prctl(PR_SET_THP_DISABLE)`, which the kernel also applies to the mappings made before it
//! (the arena is reserved before `main`). It is a flag of the process, not of the machine:
//! PostgreSQL and other programs beside it are not touched.
//!
//! `MIMALLOC_ALLOW_THP` in the environment leaves the choice to mimalloc, which reads it: `1`
//! keeps huge pages, `0` turns them off as this module does.

/// The environment variable that hands the choice back to mimalloc.
pub const ALLOW_THP_ENV: &str = "MIMALLOC_ALLOW_THP";

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Huge pages are off for this process.
    Disabled,
    /// `MIMALLOC_ALLOW_THP` was set: nothing done.
    LeftToAllocator(String),
    /// The kernel refused (the error).
    Refused(String),
    /// Not Linux: nothing to do.
    NotLinux,
}

/// Turns transparent huge pages off for the process unless `allow_thp` (the value of
/// `MIMALLOC_ALLOW_THP`) is given.
pub fn apply(allow_thp: Option<String>) -> Outcome {
    if let Some(value) = allow_thp {
        return Outcome::LeftToAllocator(value);
    }
    disable()
}

#[cfg(target_os = "linux")]
fn disable() -> Outcome {
    match rustix::thread::disable_transparent_huge_pages(true) {
        Ok(()) => Outcome::Disabled,
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

#[cfg(not(target_os = "linux"))]
fn disable() -> Outcome {
    Outcome::NotLinux
}

/// [`apply`] with the process environment: called first thing, before the runtime and the
/// logs exist, so that as little memory as possible is faulted in as huge pages before.
pub fn apply_from_env() -> Outcome {
    apply(std::env::var(ALLOW_THP_ENV).ok())
}

impl Outcome {
    /// Logs what was done (once the logs are set up).
    pub fn log(&self) {
        match self {
            Outcome::Disabled => tracing::debug!("transparent huge pages off for this process"),
            Outcome::LeftToAllocator(value) => tracing::info!(
                value,
                "{ALLOW_THP_ENV} is set: transparent huge pages are left to the allocator"
            ),
            Outcome::Refused(error) => tracing::warn!(
                error,
                "transparent huge pages could not be turned off: the server's RSS may grow by \
                 itself as the kernel collapses its memory into huge pages"
            ),
            Outcome::NotLinux => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_leaves_the_choice_to_the_allocator() {
        assert_eq!(
            apply(Some("1".to_owned())),
            Outcome::LeftToAllocator("1".to_owned())
        );
    }
}
