//! What kbs shows people: per-host output of commands and run summaries.

pub mod hosts;
pub mod lines;
pub mod report;
