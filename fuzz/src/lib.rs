//! Fuzz targets for fastrec's engine. The harness logic lives in [`harness`], which the stable
//! regression test `tests/fuzz_regressions.rs` includes by path, so every saved input replays
//! through exactly the code that fuzzed it.

pub mod harness;
