//! A value that must never reach a log, a status page or a debug print: a
//! password or a token. It shows itself only as `set` or `not set`.

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// The value itself, for the one place that needs it (comparing a
    /// password, handing a token to cloudflared).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn state(&self) -> &'static str {
        if self.is_set() { "set" } else { "not set" }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.state())
    }
}
