//! The command line: `arus serve [--config FILE]`.

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
    },
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let settings = Loader::new()
                .file(config.as_deref())
                .env(std::env::vars())
                .load()
                .context("loading configuration")?;
            telemetry::init_from(&settings.telemetry, &settings.instance_id)?;
            telemetry::exit_on_panic();
            let runner = actix_web::rt::System::new();
            let (result, embedded) = runner.block_on(async move {
                let app = match Application::build(settings).await {
                    Ok(app) => app,
                    Err(error) => return (Err(error), None),
                };
                // The embedded broker outlives every client of it: dropped
                // first, it leaves them logging errors as they close.
                let embedded = app.embedded_broker();
                (app.run_until_stopped().await, embedded)
            });
            drop(runner);
            drop(embedded);
            telemetry::shutdown();
            result
        }
    }
}
