//! `client-info-server`: serves the client-info gRPC API, or runs an admin command (the
//! command line lives in the library's `cli` module).

fn main() -> std::process::ExitCode {
    client_info_server::cli::main()
}
