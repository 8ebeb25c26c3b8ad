//! The leegality family. Its routes arrive with their issues; its envelope is here.
pub mod error;
