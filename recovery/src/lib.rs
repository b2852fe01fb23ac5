//! fastrec's recovery engine.
pub mod dir;
pub mod error;
pub mod format;
pub mod image;
pub use error::{Error, Result};
