//! `suit-tool`: create, sign, inspect and check SUIT envelopes.

fn main() -> std::process::ExitCode {
    #[cfg(feature = "openssl")]
    suit_host::crypto::install();
    suit_host::tool::main()
}
