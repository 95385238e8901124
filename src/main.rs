//! `babymon`: the command a parent or init runs.
//!
//! `babymon serve` streams the camera to browsers; `babymon check-config`
//! checks a `babymon.toml` before it goes on the SD card.

mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use babymon::config;

const USAGE: &str = "\
usage:
  babymon serve [--config FILE] [--listen ADDR:PORT]
  babymon check-config FILE
  babymon --version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => match serve::Options::parse(&args[1..]) {
            Ok(options) => serve::run(options),
            Err(message) => usage_error(&message),
        },
        Some("check-config") => match &args[1..] {
            [file] => check_config(PathBuf::from(file)),
            _ => usage_error("check-config takes one file"),
        },
        Some("--version") => {
            println!("babymon {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown command {other:?}")),
        None => usage_error("no command given"),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("babymon: {message}\n{USAGE}");
    ExitCode::from(2)
}

/// Prints every problem of a config file with its line, or `ok`.
fn check_config(path: PathBuf) -> ExitCode {
    let loaded = match config::load(&path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if loaded.problems.is_empty() {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    for p in &loaded.problems {
        let kind = match p.severity {
            config::Severity::Error => "error",
            config::Severity::Unknown => "unknown",
        };
        let key = if p.key.is_empty() {
            String::new()
        } else {
            format!(" {}:", p.key)
        };
        println!("{}:{}: {kind}:{key} {}", path.display(), p.line, p.message);
    }
    let errors = loaded.errors().count();
    let unknown = loaded.problems.len() - errors;
    eprintln!("{errors} errors, {unknown} unknown keys");
    ExitCode::FAILURE
}
