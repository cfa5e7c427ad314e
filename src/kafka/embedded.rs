//! The embedded broker: librdkafka's in-process mock cluster, for trying arus
//! with no Kafka at hand. Data lives in memory and is gone on exit; its
//! transactions are not real. Never a production or test-of-guarantees broker.

use arus_config::Settings;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tracing::warn;

pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster with every topic created.
    pub fn start(settings: &Settings) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(1)?;
        for (_, topic) in settings.kafka.topics.all() {
            // The mock cluster has no CreateTopics; it makes topics directly.
            cluster.create_topic(
                &settings.kafka.topic_name(topic),
                settings.kafka.partitions,
                1,
            )?;
        }
        warn!(
            bootstrap = %cluster.bootstrap_servers(),
            "no broker configured (ARUS__KAFKA__BROKERS): running on an embedded in-memory \
             mock cluster; every event is lost on exit and exactly-once does not hold. \
             For real use set ARUS__KAFKA__BROKERS=host:9092[,host:9092...]"
        );
        Ok(Self { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Makes the next requests of `api` fail with `errors`, one each: for
    /// tests of failure handling.
    pub fn fail_next(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) {
        self.cluster.request_errors(api, errors);
    }
}
