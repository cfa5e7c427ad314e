//! Typed configuration for arus.
//!
//! ```text
//! config/default.toml (embedded) ──▶ --config FILE ──▶ ARUS__SECTION__KEY env ──▶ Settings ──▶ validate()
//! ```
//!
//! Every layer is a TOML table merged over the one before it; the result is
//! deserialized with `deny_unknown_fields`, so a misspelt key is an error that
//! names the key rather than a silently ignored setting.

mod ip_range;
mod layers;
mod settings;
mod validate;

pub use ip_range::IpRange;

pub use layers::{ConfigError, Loader, REDACTED};
pub use settings::{
    AggregatorSettings, BreakerSettings, ChaosSettings, ClientOverrides, Compression,
    ConsumerSettings, HttpSettings, KafkaSettings, LagSettings, RetrySettings, Secret,
    SecuritySettings, SessionSettings, Settings, ShutdownSettings, TelemetrySettings,
    TopicSettings, Topics, WindowSettings,
};

/// The embedded defaults, `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");
