//! imds client (being written).
