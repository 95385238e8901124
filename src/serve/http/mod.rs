//! HTTP side of serve.
