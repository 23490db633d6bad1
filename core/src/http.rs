//! http client (being written).
