//! `client-info-server`: serves the client-info gRPC API, or runs an admin command (the
//! command line lives in the library's `cli` module).

/// mimalloc rather than glibc's allocator: under load glibc's malloc and free (with their
/// consolidation of freed chunks) were about 16 % of the server's CPU in `perf`, the largest
/// single cost after the kernel's; a request allocates many short-lived buffers and messages.
/// Without the default `mimalloc` feature the server uses the system allocator, so that heap
/// profilers that wrap malloc (heaptrack) see every allocation.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    client_info_server::cli::main()
}
