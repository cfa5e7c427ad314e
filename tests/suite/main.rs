//! The black-box suite: arus against a real Kafka-protocol broker, over HTTP and
//! as a process. One test binary (one link of the whole tree instead of one per
//! file); nextest still runs each test in its own process.

mod helpers;

mod api;
mod auth;
mod broker_outage;
mod config_cli;
mod contract;
mod crash;
mod dashboard;
mod dead_letters;
mod embedded;
mod exactly_once;
mod fencing;
mod hardening;
mod holes;
mod ingest_properties;
mod k8s;
mod kafka_auth;
mod lag;
mod metrics;
mod owners;
mod partitioner;
mod reset;
mod retry;
mod rollback;
mod rollout;
mod shutdown;
mod supervision;
mod topics;
mod traces;
mod tracker;
mod visits;
mod windows;
