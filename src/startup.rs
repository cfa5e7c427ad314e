//! Building and running arus: used by `main` and by the black-box tests alike.

use std::net::TcpListener;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor as _, Arbiter};
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use arus_actors::{ConsumerStats, ReadModel, Router};
use arus_config::Settings;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::health::Health;
use crate::http::{self, AppState};
use crate::kafka::admin::{provision_topics, TopicStatus};
use crate::kafka::changelog_reader::ReadModelFeeder;
use crate::kafka::consumer::driver::{ConsumerDriver, DriverParts};
use crate::kafka::embedded::EmbeddedBroker;
use crate::kafka::offsets::OffsetReader;
use crate::kafka::producer::EventProducer;
use crate::lag::{LagMonitor, LagView};

/// Asks a running [`Application`] to shut down, as SIGTERM does.
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    notify: Arc<Notify>,
    fatal: Arc<Mutex<Option<String>>>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.notify.notify_one();
    }

    fn fail(&self, reason: String) {
        *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.notify.notify_one();
    }

    fn failure(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub struct Application {
    port: u16,
    server: Server,
    driver: ConsumerDriver,
    feeder: ReadModelFeeder,
    producer: Arc<EventProducer>,
    health: Arc<Health>,
    read_model: Arc<ReadModel>,
    arbiters: Vec<Arbiter>,
    shutdown: ShutdownHandle,
    shutdown_timeout: Duration,
    /// Serving while not ready after SIGTERM, before intake stops; zero
    /// on the embedded broker (a trial run has no load balancer).
    drain_delay: Duration,
    // Kept alive for as long as the application runs.
    embedded: Option<Rc<EmbeddedBroker>>,
}

impl Application {
    /// Provisions topics, starts the actors, the consumer and the HTTP server.
    /// Must run inside an actix system.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let k = &settings.kafka;
        let health = Arc::new(Health::default());
        let mut user_partitions = k.partitions;
        let (embedded, brokers) = if k.uses_embedded_broker() {
            let embedded = EmbeddedBroker::start(&settings)?;
            let brokers = embedded.bootstrap_servers();
            (Some(Rc::new(embedded)), brokers)
        } else {
            let statuses = provision_topics(&settings, &k.brokers)
                .await
                .context("provisioning topics")?;
            let users = k.topic_name(&k.topics.user_events);
            if let Some((_, TopicStatus::Existing { partitions })) =
                statuses.iter().find(|(name, _)| *name == users)
            {
                user_partitions = *partitions;
            }
            (None, k.brokers.clone())
        };
        health.set_topics_ready(true);

        let read_model = Arc::new(ReadModel::new());
        let stats = Arc::new(ConsumerStats::default());
        let arbiter_count = match settings.aggregator.arbiters {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        let arbiters: Vec<Arbiter> = (0..arbiter_count).map(|_| Arbiter::new()).collect();
        let handles: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
        let router = Arc::new(Router::start(
            settings.aggregator.shards,
            settings.consumer.mailbox_capacity,
            (&settings.breaker).into(),
            &handles,
        ));
        // Every instance reads every changelog partition: any of them
        // answers for all partitions.
        let feeder = ReadModelFeeder::spawn(
            &settings,
            &brokers,
            Arc::clone(&read_model),
            Arc::clone(&health),
        )
        .context("starting the read model")?;

        // Bound before the consumer starts: the address other instances
        // reach this one at (its ownership records) needs the port.
        let listener = TcpListener::bind(&settings.http.bind)
            .with_context(|| format!("binding http.bind {}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        let settings = {
            let mut with_address = settings.clone();
            if with_address.http.advertised_url.is_empty() {
                with_address.http.advertised_url = with_address.http.advertised_on(port);
            }
            with_address
        };
        let shutdown = ShutdownHandle::default();
        let on_fatal = {
            let shutdown = shutdown.clone();
            move |reason| shutdown.fail(reason)
        };
        let driver = ConsumerDriver::spawn(
            &settings,
            &brokers,
            DriverParts {
                router: Arc::clone(&router),
                stats: Arc::clone(&stats),
                health: Arc::clone(&health),
                arbiter: handles[0].clone(),
            },
            on_fatal,
        )
        .context("starting the consumer")?;
        let producer =
            Arc::new(EventProducer::new(&settings, &brokers).context("creating the producer")?);
        let lag = Arc::new(LagView::default());
        let offsets = OffsetReader::new(&settings, &brokers, &k.group_id)?;
        LagMonitor::new(&settings, offsets, Arc::clone(&lag), driver.assignment()).start();

        let state = web::Data::new(AppState {
            settings: Arc::new(settings.clone()),
            brokers: brokers.clone(),
            instance_id: settings.instance_id.clone(),
            user_partitions,
            group_id: k.group_id.clone(),
            user_topic: k.topic_name(&k.topics.user_events),
            page_topic: k.topic_name(&k.topics.page_views),
            max_body_bytes: settings.http.max_body_bytes,
            max_batch_size: settings.http.max_batch_size,
            max_record_bytes: settings
                .kafka
                .client
                .get("message.max.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000_000),
            active_window_seconds: settings.aggregator.active_window_seconds,
            top_pages_limit: settings.aggregator.top_pages_limit,
            events_by_user_limit: settings.aggregator.events_by_user_limit,
            producer: Arc::clone(&producer),
            read_model: Arc::clone(&read_model),
            stats,
            health: Arc::clone(&health),
            assignment: driver.assignment(),
            consumption: driver.consumption(),
            router: Arc::clone(&router),
            lag,
            requests: crate::http::request_metrics::RequestMetrics::default(),
            rate_limiter: crate::http::rate_limit::RateLimiter::new(
                settings.security.rate_limit_events_per_second,
                settings.security.rate_limit_burst,
                settings.http.max_batch_size,
            ),
            ingested: std::sync::atomic::AtomicU64::new(0),
            trusted_proxies: settings
                .http
                .trusted_proxies
                .iter()
                .filter_map(|p| arus_config::IpRange::parse(p))
                .collect(),
        });
        let workers = match settings.http.workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(http::cors_guard))
                .wrap(actix_web::middleware::from_fn(
                    http::drain::close_when_draining,
                ))
                .wrap(actix_web::middleware::from_fn(
                    http::request_metrics::record,
                ))
                .configure(http::routes)
        })
        .workers(workers)
        .max_connections(settings.http.max_connections)
        // Signals are handled by run_until_stopped, in the shutdown order.
        .disable_signals()
        .listen(listener)?
        .run();
        info!(port, instance = %settings.instance_id, brokers = %brokers, "arus listening");
        Ok(Self {
            port,
            server,
            driver,
            feeder,
            producer,
            health,
            read_model,
            arbiters,
            shutdown,
            shutdown_timeout: Duration::from_millis(settings.shutdown.timeout_ms),
            drain_delay: if settings.kafka.uses_embedded_broker() {
                Duration::ZERO
            } else {
                Duration::from_millis(settings.shutdown.drain_delay_ms)
            },
            embedded,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    pub fn read_model(&self) -> Arc<ReadModel> {
        Arc::clone(&self.read_model)
    }

    /// The embedded broker, when no broker is configured.
    pub fn embedded_broker(&self) -> Option<Rc<EmbeddedBroker>> {
        self.embedded.clone()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM, SIGINT, a [`ShutdownHandle`] or a fatal error,
    /// then shuts down in order: not ready → stop intake → stop consuming and
    /// commit → leave the group → flush the producer → stop the actors.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            mut driver,
            mut feeder,
            producer,
            health,
            arbiters,
            shutdown,
            shutdown_timeout,
            drain_delay,
            embedded: _embedded,
            ..
        } = self;
        let server_handle = server.handle();
        let mut server = actix_web::rt::spawn(server);
        // Whether to keep serving, not ready, before intake stops: so that a
        // load balancer sees the instance go not-ready and sends no more
        // requests to it before it stops taking them.
        let mut drain = drain_delay;
        tokio::select! {
            signal = termination() => {
                info!(?signal, "termination signal received");
                if signal == Signal::Interrupt {
                    // Ctrl-C at a terminal: nobody balances load onto it.
                    drain = Duration::ZERO;
                }
            }
            () = shutdown.notify.notified() => {}
            result = &mut server => {
                warn!(?result, "http server stopped by itself");
                drain = Duration::ZERO;
            }
        }
        let failure = shutdown.failure();
        if let Some(reason) = &failure {
            error!(%reason, "shutting down after a fatal error");
        }
        info!("shutting down");
        health.set_shutting_down();
        let sequence = async {
            if !drain.is_zero() {
                info!(
                    drain_ms = drain.as_millis() as u64,
                    "not ready; still serving while load balancers notice"
                );
                tokio::time::sleep(drain).await;
            }
            server_handle.stop(true).await;
            let producer = Arc::clone(&producer);
            actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<()> {
                driver.stop()?;
                feeder.stop();
                producer.flush(Duration::from_secs(5))?;
                for arbiter in arbiters {
                    arbiter.stop();
                    arbiter.join().ok();
                }
                Ok(())
            })
            .await
            .context("shutdown task")?
        };
        match tokio::time::timeout(shutdown_timeout, sequence).await {
            Ok(result) => result?,
            Err(_) => anyhow::bail!("shutdown took longer than shutdown.timeout_ms"),
        }
        info!("shutdown complete");
        match failure {
            Some(reason) => Err(anyhow::anyhow!(reason)),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Terminate,
    Interrupt,
}

/// Resolves on SIGTERM or SIGINT, saying which.
async fn termination() -> Signal {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            warn!(%error, "cannot listen for SIGTERM");
            return match tokio::signal::ctrl_c().await {
                Ok(()) => Signal::Interrupt,
                Err(_) => std::future::pending().await,
            };
        }
    };
    tokio::select! {
        _ = term.recv() => Signal::Terminate,
        _ = tokio::signal::ctrl_c() => Signal::Interrupt,
    }
}
