//! The client-info server's command line, built in the test package so that the integration
//! tests can run it as a child process (see `Cargo.toml`).

fn main() -> std::process::ExitCode {
    client_info_server::cli::main()
}
