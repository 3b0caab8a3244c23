fn main() -> std::process::ExitCode {
    meshbox::cli::main()
}
