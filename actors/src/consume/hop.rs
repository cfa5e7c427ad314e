//! One hop of a batch to an aggregator shard, through its breaker, and why
//! a hop failed (always transient: its events go to the retry topic).

use crate::aggregate::aggregator_shard::{ApplyOutcome, ShardRefused};
use crate::aggregate::breaker::Permit;
use crate::aggregate::router::Hop;
use crate::model::error_class::ErrorClass;
use crate::model::metric_kind::MetricKind;
use actix::MailboxError;

/// Why a hop to a shard failed: each is transient, and its events go to the
/// retry topic.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("aggregator shard {shard} of {metric} is gone: {source}")]
    ShardUnavailable {
        metric: MetricKind,
        shard: usize,
        source: MailboxError,
    },
    #[error(transparent)]
    ShardRefused(#[from] ShardRefused),
    #[error("the breaker of shard {shard} of {metric} is open")]
    BreakerOpen { metric: MetricKind, shard: usize },
}

impl ProcessError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ProcessError::ShardUnavailable { .. }
            | ProcessError::ShardRefused(_)
            | ProcessError::BreakerOpen { .. } => ErrorClass::Transient,
        }
    }
}

/// Sends one hop, unless its breaker is open, and tells the breaker how it went.
pub(crate) async fn send_hop(hop: Hop) -> (MetricKind, usize, Result<ApplyOutcome, ProcessError>) {
    let (metric, shard) = (hop.metric, hop.shard);
    if hop.breaker().permit() == Permit::Refused {
        return (
            metric,
            shard,
            Err(ProcessError::BreakerOpen { metric, shard }),
        );
    }
    let in_flight = hop.in_flight_guard();
    let answer = hop.recipient.send(hop.apply).await;
    drop(in_flight);
    let result = match answer {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(refused)) => Err(ProcessError::ShardRefused(refused)),
        Err(source) => Err(ProcessError::ShardUnavailable {
            metric,
            shard,
            source,
        }),
    };
    let mut breaker = hop.breaker.lock().unwrap_or_else(|p| p.into_inner());
    match &result {
        Ok(_) => breaker.success(),
        Err(_) => breaker.failure(),
    }
    (metric, shard, result)
}
