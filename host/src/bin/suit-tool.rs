//! `suit-tool`: create, sign, inspect and check SUIT envelopes.

fn main() -> std::process::ExitCode {
    suit_host::tool::main()
}
