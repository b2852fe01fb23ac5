//! Helpers the integration tests share: generating crash states, copying them, and checking
//! them against the oracle.

#![allow(dead_code, missing_docs)]

use std::path::Path;

use workloads::{GenParams, GenSummary};

/// Generates a crash state, failing the test (with its seed) if the generator refuses.
pub fn generate(dir: &Path, p: &GenParams) -> GenSummary {
    workloads::generate(dir, p).unwrap_or_else(|e| panic!("seed {}: {e}", p.seed))
}

/// Copies a crash state: image, oracle files, journal and checkpoints.
pub fn copy_dir(from: &Path, to: &Path) {
    for sub in ["journal", "checkpoints", "snapshots"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        if let Ok(entries) = std::fs::read_dir(from.join(sub)) {
            for e in entries {
                let e = e.expect("entry");
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).expect("copy");
            }
        }
    }
    for rel in ["image.img", "expected.digests", "expected.json", "manifest.json"] {
        std::fs::copy(from.join(rel), to.join(rel)).expect("copy");
    }
}

/// The image's bytes.
pub fn image(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("image.img")).expect("read image")
}

/// Whether the image equals the oracle's expected image.
pub fn matches_oracle(dir: &Path) -> bool {
    workloads::digest::verify_dir(dir).expect("verify").matches
}
