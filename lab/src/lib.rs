//! fastrec's lab: runs the experiment matrix ([`run`]), keeps each measurement with its
//! provenance ([`record`]), and renders per-run summaries and plots, the report page and the
//! claims table ([`render`]). docs/LAB.md describes the files.

pub mod env;
pub mod record;
pub mod render;
pub mod run;
