//! The baseline: a plain rdkafka producer and consumer against the same
//! broker, with the same records and settings arus's ingest uses.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{event, IN_FLIGHT, PARTITIONS};

pub async fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    for result in admin.create_topics([&new], &AdminOptions::new()).await? {
        result.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// A producer set up as arus's ingest producer is.
fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .create()?)
}

/// Connected and with its producer id before the clock starts, like arus's
/// producer when its ingest is timed (one record more).
async fn warm_up(producer: &FutureProducer, topic: &str) -> anyhow::Result<()> {
    producer
        .send(
            FutureRecord::to(topic).key("warm-up").payload("{}"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

/// Produces `n` events like arus's ingest does; returns events per second.
/// `timed`: the rate is the figure wanted (not a preload).
pub async fn raw_produce(
    brokers: &str,
    topic: &str,
    n: usize,
    ids: bool,
    timed: bool,
) -> anyhow::Result<f64> {
    let producer = producer(brokers)?;
    let payloads: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let e = event(i, ids);
            let key = e["userId"].as_str().unwrap_or_default().to_string();
            (key, serde_json::to_vec(&e).unwrap_or_default())
        })
        .collect();
    if timed {
        warm_up(&producer, topic).await?;
    }
    let started = Instant::now();
    for chunk in payloads.chunks(IN_FLIGHT) {
        let sends = chunk.iter().map(|(key, value)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(value),
                Duration::from_secs(30),
            )
        });
        for result in join_all(sends).await {
            result.map_err(|(e, _)| e)?;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Reads `n` records of `topic` from the beginning; returns records per second.
pub fn raw_consume(brokers: &str, topic: &str, n: usize) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-raw"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        // The fetch settings arus's own consumer runs with: the comparison
        // is of what each does with the records, not of fetch tuning.
        .set("fetch.wait.max.ms", "50")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut read = 0;
    while read < n {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("raw consumer read {read} of {n}");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            read += 1;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Produces `n` events from `clients` senders that each wait for one
/// record's acknowledgement before sending the next, as that many HTTP
/// clients sending single events do; returns events per second.
pub async fn raw_produce_one_at_a_time(
    brokers: &str,
    topic: &str,
    n: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    let producer = producer(brokers)?;
    warm_up(&producer, topic).await?;
    let body = serde_json::to_vec(&event(7, false))?;
    let started = Instant::now();
    let senders = (0..clients).map(|c| {
        let (producer, body) = (&producer, &body);
        async move {
            for i in (c..n).step_by(clients) {
                let key = format!("user-{:06}", i % 50_000);
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(body),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)?;
            }
            anyhow::Ok(())
        }
    });
    for result in join_all(senders).await {
        result?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
