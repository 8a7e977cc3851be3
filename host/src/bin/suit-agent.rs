//! `suit-agent`: the device update daemon and CLI.

fn main() -> std::process::ExitCode {
    #[cfg(feature = "openssl")]
    suit_host::crypto::install();
    suit_host::agent::cli::main()
}
