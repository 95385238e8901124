//! babymon: the parts that `babymon-init` (PID 1) and `babymon serve` share.
//!
//! Only light code lives here: the config file and the state files the two
//! programs exchange under `/run/babymon`. Nothing here may link GStreamer,
//! GLib or anything else PID 1 must not depend on.

pub mod config;
pub mod init;
pub mod statefile;
