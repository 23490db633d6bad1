//! spotinst client (being written).
