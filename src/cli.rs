//! The command line: `arus serve [--config FILE]`, `arus config check
//! [--config FILE]`, `arus config print [--config FILE]`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use arus_config::Loader;
use clap::{Parser, Subcommand};

use crate::startup::Application;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "arus", version, about = "Real-time analytics on Apache Kafka")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: HTTP API, consumer and aggregators.
    Serve {
        /// A TOML file overriding the defaults (environment variables
        /// ARUS__SECTION__KEY override both).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Also send realistic demo traffic into this instance (through its
        /// own HTTP API), so the dashboard at / shows life.
        #[arg(long)]
        demo: bool,
        /// Demo events a second, on average.
        #[arg(long, value_name = "N", default_value_t = 20.0)]
        demo_rate: f64,
    },
    /// Check or show a configuration (defaults, file, environment) as
    /// `serve` would load it.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate it: exit 0 if `serve` would accept it, else non-zero with
    /// the bad key named.
    Check {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML, secrets redacted.
    Print {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn loader(config: Option<&std::path::Path>) -> Loader {
    Loader::new().file(config).env(std::env::vars())
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { action } => match action {
            ConfigAction::Check { config } => {
                let settings = loader(config.as_deref())
                    .load()
                    .context("configuration invalid")?;
                // The command's answer, on stdout (logs go to stderr).
                writeln!(
                    std::io::stdout().lock(),
                    "configuration valid: instance {}, brokers {}, group {}, http {}",
                    settings.instance_id,
                    if settings.kafka.uses_embedded_broker() {
                        "(embedded mock cluster)"
                    } else {
                        settings.kafka.brokers.as_str()
                    },
                    settings.kafka.group_id,
                    settings.http.bind
                )?;
                Ok(())
            }
            ConfigAction::Print { config } => {
                let (_, effective) = loader(config.as_deref())
                    .load_effective()
                    .context("configuration invalid")?;
                write!(std::io::stdout().lock(), "{effective}")?;
                Ok(())
            }
        },
        Command::Serve {
            config,
            demo,
            demo_rate,
        } => {
            anyhow::ensure!(
                demo_rate.is_finite() && (0.1..=10_000.0).contains(&demo_rate),
                "--demo-rate must be from 0.1 to 10000 events a second (got {demo_rate})"
            );
            let settings = loader(config.as_deref())
                .load()
                .context("loading configuration")?;
            telemetry::init_from(&settings.telemetry, &settings.instance_id)?;
            telemetry::exit_on_panic();
            let settings_key = settings
                .security
                .ingest_api_keys
                .first()
                .map(|k| k.expose().to_string());
            let runner = actix_web::rt::System::new();
            let (result, embedded) = runner.block_on(async move {
                let app = match Application::build(settings).await {
                    Ok(app) => app,
                    Err(error) => return (Err(error), None),
                };
                // The embedded broker outlives every client of it: dropped
                // first, it leaves them logging errors as they close.
                let embedded = app.embedded_broker();
                if demo {
                    let base = format!("http://127.0.0.1:{}", app.port());
                    let key = settings_key.clone();
                    actix_web::rt::spawn(crate::demo::run(base, demo_rate, key));
                }
                (app.run_until_stopped().await, embedded)
            });
            if result.is_err() {
                // A failed start (the HTTP port in use, say) leaves actors
                // started before it with work scheduled; dropping the
                // runtime would poll them once more with no runtime under
                // them, a panic that hides the error. The process ends
                // here with the error instead.
                std::mem::forget(runner);
            } else {
                drop(runner);
            }
            drop(embedded);
            telemetry::shutdown();
            result
        }
    }
}
