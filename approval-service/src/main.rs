//! The `gitgate` binary.

fn main() -> std::process::ExitCode {
    gitgate::cli::main()
}
