//! The `keel` binary.

fn main() -> std::process::ExitCode {
    keel_runtime::cli::main()
}
