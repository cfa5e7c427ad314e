//! librdkafka settings for each client. The user's pass-through settings come
//! first; the settings arus's guarantees rest on are forced after them, each
//! with the reason.

use arus_config::Settings;
use rdkafka::ClientConfig;

fn base(settings: &Settings, brokers: &str, role: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in settings.kafka.client.iter() {
        config.set(key, value);
    }
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id(settings, role));
    config
}

fn client_id(settings: &Settings, role: &str) -> String {
    format!("arus-{}-{role}", settings.instance_id)
}

/// The ingest producer.
pub fn producer(settings: &Settings, brokers: &str) -> ClientConfig {
    let k = &settings.kafka;
    let mut config = base(settings, brokers, "producer");
    config
        // No duplicates or reordering from the producer's own retries.
        .set("enable.idempotence", "true")
        // A 2xx promises the event is durable: every in-sync replica has it.
        .set("acks", "all")
        // The bound on how long an ingest request waits for Kafka.
        .set("message.timeout.ms", k.produce_timeout_ms.to_string())
        // The user's partition, as every other producer computes it.
        .set("partitioner", &k.partitioner)
        .set("compression.type", k.compression.as_str());
    config
}

/// The transactional producer of the changelog. Its `transactional.id` is
/// stable per instance: a restarted instance fences its predecessor and
/// aborts whatever transaction that one left open.
pub fn transactional_producer(settings: &Settings, brokers: &str) -> ClientConfig {
    let k = &settings.kafka;
    let mut config = base(settings, brokers, "committer");
    config
        .set(
            "transactional.id",
            format!("arus-{}-{}", k.group_id, settings.instance_id),
        )
        .set(
            "transaction.timeout.ms",
            k.transaction_timeout_ms.to_string(),
        )
        // Transactions need the idempotent producer and every replica's ack.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", k.compression.as_str());
    config
}

/// A reader of the changelog: assigned partitions, never a group member.
pub fn changelog_reader(settings: &Settings, brokers: &str, role: &str) -> ClientConfig {
    let mut config = base(settings, brokers, role);
    config
        // librdkafka wants a group id even for assigned partitions; it never
        // joins, and never commits.
        .set("group.id", format!("arus-{}-{role}", settings.instance_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Read uncommitted: a transaction left open by a crashed instance
        // must not block every reader of its partition until the broker times
        // it out (some brokers never do). Safe because every entry is a
        // deterministic function of the input up to its `as_of`: an entry of
        // an open or aborted transaction is one the replay of that input
        // writes again, identically. The input is still read read_committed.
        .set("isolation.level", "read_uncommitted")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    fetch_settings(settings, &mut config);
    config
}

/// Fetch settings for every reader (the group consumer, each changelog
/// reader), unless the pass-through settings say otherwise.
///
/// `fetch.wait.max.ms` bounds how long the broker may hold a fetch that has
/// no data yet. A broker should answer as soon as data arrives, but not every
/// Kafka-protocol broker does (the test broker holds a fetch to its full
/// wait), and librdkafka's default of 500 ms then becomes part of every
/// event's way to a query answer. 50 ms costs an idle instance about 20
/// empty fetches a second per broker.
///
/// `fetch.queue.backoff.ms`: once the records fetched ahead reach
/// `queued.min.messages` (100,000, counted over the whole consumer queue, not
/// per partition), librdkafka stops fetching and looks again only after this
/// backoff, 1 s by default. A reader working through a backlog (a restart,
/// a restore, a burst) drained its queue long before that and waited for
/// nothing: stalls of ~350 ms after every ~130,000 records, which cost end to
/// end processing a third of its rate. Looking again after 10 ms costs
/// nothing while the queue is short (the backoff only applies to a full one).
fn fetch_settings(settings: &Settings, config: &mut ClientConfig) {
    for (key, value) in [
        ("fetch.wait.max.ms", "50"),
        ("fetch.queue.backoff.ms", "10"),
    ] {
        if !settings.kafka.client.contains_key(key) {
            config.set(key, value);
        }
    }
}

/// The client id of this instance's group member, as the group lists it.
pub fn consumer_client_id(settings: &Settings) -> String {
    client_id(settings, CONSUMER)
}

const CONSUMER: &str = "consumer";

/// The group consumer of the input topics.
pub fn consumer(settings: &Settings, brokers: &str) -> ClientConfig {
    let k = &settings.kafka;
    let mut config = base(settings, brokers, CONSUMER);
    config
        .set("group.id", &k.group_id)
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", k.heartbeat_interval_ms.to_string())
        .set("max.poll.interval.ms", k.max_poll_interval_ms.to_string())
        .set("partition.assignment.strategy", &k.assignment_strategy)
        // Offsets are committed by the driver, only for applied events.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Never count a record of an aborted transaction.
        .set("isolation.level", "read_committed")
        // A new group starts at the beginning: nothing is skipped.
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    if k.static_membership {
        // A stable member: a restart within the session timeout keeps its
        // partitions, and leaving sends no LeaveGroup.
        config.set("group.instance.id", &settings.instance_id);
    }
    fetch_settings(settings, &mut config);
    config
}

/// A reader of a group's committed offsets and its partitions' ends. It
/// carries the group's id to read its offsets, but never subscribes, so it
/// never joins the group; it commits only when asked to reset a group that
/// has no members.
pub fn offsets_reader(settings: &Settings, brokers: &str, group: &str) -> ClientConfig {
    let mut config = base(settings, brokers, "offsets");
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // End offsets as a read_committed member sees them: the last stable offset.
        .set("isolation.level", "read_committed")
        // Reading what a group has not read yet stops at the end.
        .set("enable.partition.eof", "true");
    config
}

/// Admin and metadata clients.
pub fn admin(settings: &Settings, brokers: &str) -> ClientConfig {
    base(settings, brokers, "admin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_settings_win_over_pass_through() {
        let mut settings = arus_config::Loader::new().load().expect("defaults");
        settings
            .kafka
            .client
            .insert("enable.auto.commit".into(), "true".into());
        settings.kafka.client.insert("acks".into(), "1".into());
        settings
            .kafka
            .client
            .insert("fetch.min.bytes".into(), "7".into());
        let c = consumer(&settings, "127.0.0.1:9092");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("fetch.min.bytes"), Some("7"));
        assert_eq!(c.get("group.id"), Some("analytics-consumer-group"));
        let p = producer(&settings, "127.0.0.1:9092");
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("compression.type"), Some("lz4"));
    }

    #[test]
    fn readers_wait_briefly_for_data_and_refetch_soon_unless_told_otherwise() {
        let mut settings = arus_config::Loader::new().load().expect("defaults");
        let brokers = "127.0.0.1:9092";
        for reader in [
            consumer(&settings, brokers),
            changelog_reader(&settings, brokers, "restore"),
        ] {
            assert_eq!(reader.get("fetch.wait.max.ms"), Some("50"));
            assert_eq!(reader.get("fetch.queue.backoff.ms"), Some("10"));
        }
        settings
            .kafka
            .client
            .insert("fetch.wait.max.ms".into(), "200".into());
        settings
            .kafka
            .client
            .insert("fetch.queue.backoff.ms".into(), "500".into());
        for reader in [
            consumer(&settings, brokers),
            changelog_reader(&settings, brokers, "restore"),
        ] {
            assert_eq!(reader.get("fetch.wait.max.ms"), Some("200"));
            assert_eq!(reader.get("fetch.queue.backoff.ms"), Some("500"));
        }
    }
}
