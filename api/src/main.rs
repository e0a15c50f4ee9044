fn main() -> std::process::ExitCode {
    buildfund_api::cli::main()
}
