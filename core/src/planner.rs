//! Pure membership decisions (placeholder while the planner is written).
