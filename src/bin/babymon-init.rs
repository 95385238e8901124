//! `babymon-init`: the device's PID 1. Everything is in `babymon::init`.

fn main() -> std::process::ExitCode {
    babymon::init::main()
}
