//! `naive_sync`: the benchmark's baseline strategy (read every group, put every group, keep
//! nothing). See `examples/bench/naive.rs`; `cargo run --release --example bench` runs it.
//!
//! ```sh
//! cargo run --release --example naive_sync -- --config config.toml
//! ```

#[path = "bench/naive.rs"]
mod naive;

fn main() -> std::process::ExitCode {
    naive::main_with_args(std::env::args().skip(1))
}
