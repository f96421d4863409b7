//! Only the benchmark (benches/backends.rs).
