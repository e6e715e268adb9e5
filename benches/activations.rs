//! Placeholder until the benchmark issue lands: criterion needs a target to build `cargo bench --no-run`.
fn main() {}
