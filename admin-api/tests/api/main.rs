//! Integration tests of the admin API against a real PostgreSQL (DATABASE_URL,
//! default `postgres://postgres@127.0.0.1:5432/postgres`); every test creates
//! and drops its own database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod account_safety;
mod ai_compliance;
mod ai_models;
mod ai_optimizer;
mod ai_predict;
mod ai_query;
mod approvals;
mod approvals_time;
mod audit_admin;
mod audit_ingest;
mod audit_query;
mod auth;
mod binary;
mod biometrics;
mod bundle_util;
mod catalog;
mod console;
mod deltas;
mod demo_seed;
mod hostile_input;
mod isolation;
mod keys_at_rest;
mod lockout;
mod logs;
mod openapi;
mod otel;
mod password_policy;
mod permissions;
mod platform_role;
mod rbac;
mod readme;
mod rls;
mod snapshots;
mod socket;
mod tenants;
mod users;
mod webhooks;
mod what_if;
