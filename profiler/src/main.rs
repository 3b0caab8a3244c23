//! `profiler`: measures the latency and CPU a sidecar proxy adds, per hop.
fn main() -> std::process::ExitCode {
    profiler::cli::main()
}
