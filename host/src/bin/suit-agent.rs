//! `suit-agent`: the device update daemon and CLI.

fn main() -> std::process::ExitCode {
    suit_host::agent::cli::main()
}
