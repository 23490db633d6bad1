//! The clients of the three services etcd-spot talks to: AWS instance metadata ([`imds`]), the Spotinst API
//! ([`spotinst`]) and etcd's JSON gateway ([`etcd`]), all through one HTTP layer ([`http`]).
//!
//! A client knows its service's wire format and nothing of the application: it takes base URLs, tokens and an
//! HTTP policy as arguments, never the binaries' settings, and it decides nothing. It never changes anything
//! it was not asked to, and never logs a header value.

pub mod etcd;
pub mod etcd_auth;
pub mod http;
pub mod imds;
pub mod small_file;
pub mod spotinst;
pub mod tls;
