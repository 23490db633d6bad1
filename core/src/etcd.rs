//! etcd client (being written).
