//! AI-assisted administration (issue 23, docs/ai.md): explainable answers
//! over the policy and the audit trail. Nothing here ever changes policy:
//! every feature answers, and proposes changes as ordinary API calls an
//! admin makes.

pub mod predict;
pub mod query;
