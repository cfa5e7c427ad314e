//! Merging the configuration layers: embedded defaults, a file, the environment.

use std::path::Path;

use toml::{Table, Value};

use crate::{Settings, DEFAULT_TOML};

/// Prefix of the environment variables that override settings.
const ENV_PREFIX: &str = "ARUS__";

/// Why the configuration could not be loaded. Each variant names where the
/// bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    ParseFile { path: String, message: String },
    #[error("{var}: unknown setting (no key {key} in config/default.toml)")]
    UnknownEnv { var: String, key: String },
    #[error("{var}: {message}")]
    BadEnv { var: String, message: String },
    #[error("configuration is invalid: {0}")]
    Deserialize(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// Builds [`Settings`] from the layers.
#[derive(Debug, Default)]
pub struct Loader {
    file: Option<std::path::PathBuf>,
    env: Vec<(String, String)>,
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// An optional TOML file merged over the defaults.
    pub fn file(mut self, path: Option<&Path>) -> Self {
        self.file = path.map(Path::to_path_buf);
        self
    }

    /// Environment variables to read overrides from (only `ARUS__*` are used).
    pub fn env<I: IntoIterator<Item = (String, String)>>(mut self, vars: I) -> Self {
        self.env = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        self
    }

    /// Merges the layers, deserializes and validates.
    pub fn load(self) -> Result<Settings, ConfigError> {
        self.load_effective().map(|(settings, _)| settings)
    }

    /// As [`Loader::load`], with the merged configuration as TOML, secrets
    /// redacted: what `arus config print` shows.
    pub fn load_effective(self) -> Result<(Settings, Table), ConfigError> {
        let mut table: Table =
            DEFAULT_TOML
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::ParseFile {
                    path: "config/default.toml (embedded)".into(),
                    message: e.to_string(),
                })?;
        if let Some(path) = &self.file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: shown.clone(),
                source,
            })?;
            let overlay: Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::ParseFile {
                        path: shown,
                        message: e.to_string(),
                    })?;
            merge(&mut table, overlay);
        }
        let mut env = self.env;
        // Sorted so that the outcome does not depend on the environment's order.
        env.sort();
        for (var, raw) in env {
            apply_env(&mut table, &var, &raw)?;
        }
        let mut settings: Settings = Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Deserialize(e.message().to_string()))?;
        settings.resolve_instance_id();
        settings.validate()?;
        table.insert(
            "instance_id".into(),
            Value::String(settings.instance_id.clone()),
        );
        redact(&mut table);
        Ok((settings, table))
    }
}

/// Shown in place of a secret's value.
pub const REDACTED: &str = "[redacted]";

/// Replaces every secret's value in a merged configuration: the keys,
/// tokens and salts of `[security]`, and the secret-looking librdkafka settings.
fn redact(table: &mut Table) {
    let hide = |value: &mut Value| match value {
        Value::String(s) if !s.is_empty() => *s = REDACTED.into(),
        Value::Array(items) => {
            for item in items {
                *item = Value::String(REDACTED.into());
            }
        }
        _ => {}
    };
    if let Some(Value::Table(security)) = table.get_mut("security") {
        for (key, value) in security.iter_mut() {
            if key.ends_with("_keys") || key.ends_with("_token") || key.ends_with("_salt") {
                hide(value);
            }
        }
    }
    if let Some(Value::Table(client)) = table
        .get_mut("kafka")
        .and_then(Value::as_table_mut)
        .and_then(|k| k.get_mut("client"))
    {
        for (key, value) in client.iter_mut() {
            if crate::settings::ClientOverrides::is_secret(key) {
                hide(value);
            }
        }
    }
}

fn merge(base: &mut Table, overlay: Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(over)) => merge(inner, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `ARUS__KAFKA__BROKERS=a:9092` sets `kafka.brokers`. The value is parsed as
/// the type the default has, so `ARUS__KAFKA__PARTITIONS=x` fails here with
/// the variable's name instead of later with a vague type error.
///
/// `ARUS__KAFKA__CLIENT__FETCH_MIN_BYTES=1` sets the pass-through librdkafka
/// setting `fetch.min.bytes`: environment variable names cannot hold dots and
/// librdkafka's names hold no underscores, so `_` becomes `.` there.
fn apply_env(table: &mut Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::BadEnv {
            var: var.into(),
            message: "empty key segment".into(),
        });
    }
    let key = path.join(".");
    if path.len() == 3 && path[0] == "kafka" && path[1] == "client" {
        let client = table
            .get_mut("kafka")
            .and_then(Value::as_table_mut)
            .and_then(|k| k.get_mut("client"))
            .and_then(Value::as_table_mut)
            .ok_or_else(|| ConfigError::UnknownEnv {
                var: var.into(),
                key: key.clone(),
            })?;
        client.insert(path[2].replace('_', "."), Value::String(raw.into()));
        return Ok(());
    }
    let (last, parents) = path.split_last().unwrap_or((&path[0], &[]));
    let mut cursor = &mut *table;
    for segment in parents {
        cursor = cursor
            .get_mut(segment)
            .and_then(Value::as_table_mut)
            .ok_or_else(|| ConfigError::UnknownEnv {
                var: var.into(),
                key: key.clone(),
            })?;
    }
    let current = cursor.get(last).ok_or_else(|| ConfigError::UnknownEnv {
        var: var.into(),
        key: key.clone(),
    })?;
    let bad = |expected: &str| ConfigError::BadEnv {
        var: var.into(),
        message: format!("expected {expected}, got {raw:?}"),
    };
    let value = match current {
        Value::String(_) => Value::String(raw.into()),
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?),
        // A list from a comma-separated value; empty items dropped.
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        Value::Table(_) | Value::Datetime(_) => {
            return Err(ConfigError::BadEnv {
                var: var.into(),
                message: format!("{key} is a section, not a single value"),
            })
        }
    };
    cursor.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_seeds() {
        let s = Loader::new().load().expect("defaults load");
        assert_eq!(s.http.bind, "0.0.0.0:3000");
        assert_eq!(s.kafka.group_id, "analytics-consumer-group");
        assert_eq!(s.kafka.partitions, 3);
        assert_eq!(s.kafka.brokers, "");
        assert_eq!(
            s.kafka.topic_name(&s.kafka.topics.user_events),
            "user-events"
        );
    }

    #[test]
    fn the_partitioner_is_the_java_clients_unless_set_to_another_of_librdkafkas() {
        let s = Loader::new().load().expect("defaults load");
        assert_eq!(s.kafka.partitioner, "murmur2_random");
        let s = Loader::new()
            .env(env(&[("ARUS__KAFKA__PARTITIONER", "consistent_random")]))
            .load()
            .expect("librdkafka's own");
        assert_eq!(s.kafka.partitioner, "consistent_random");
        let error = Loader::new()
            .env(env(&[("ARUS__KAFKA__PARTITIONER", "crc32")]))
            .load()
            .expect_err("not a partitioner");
        assert!(
            error
                .to_string()
                .starts_with("kafka.partitioner: must be one of murmur2_random, murmur2,"),
            "{error}"
        );
    }

    #[test]
    fn endpoints_must_be_plain_http_or_empty() {
        for key in ["ARUS__LAG__WEBHOOK_URL", "ARUS__TELEMETRY__OTLP_ENDPOINT"] {
            let error = Loader::new()
                .env(env(&[(key, "https://receiver:443/x")]))
                .load()
                .expect_err("https is refused");
            let name = key
                .trim_start_matches("ARUS__")
                .replace("__", ".")
                .to_lowercase();
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("{name}: must be an http:// URL")),
                "{text}"
            );
            assert!(text.contains("\"https://receiver:443/x\""), "{text}");
            Loader::new()
                .env(env(&[(key, "http://receiver:8080/x")]))
                .load()
                .expect("http is accepted");
        }
    }

    #[test]
    fn the_kubernetes_config_map_loads() {
        let map = include_str!("../../k8s/base/configmap.yaml");
        let data: Vec<(String, String)> = map
            .split_once("\ndata:\n")
            .expect("a data section")
            .1
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.to_string(), v.trim_matches('"').to_string()))
            })
            .collect();
        assert!(data.len() >= 10, "{data:?}");
        let s = Loader::new()
            .env(data)
            .load()
            .expect("the config map loads");
        assert_eq!(s.kafka.partitions, 6);
        assert_eq!(s.telemetry.log_format, "json");
        assert_eq!(s.telemetry.sampling_ratio, 0.1);
        assert_eq!(s.lag.alert_threshold, 10_000);
        assert_eq!(s.lag.webhook_url, "http://alert-webhook:8080/arus-lag");
    }

    #[test]
    fn env_overrides_take_the_defaults_type() {
        let s = Loader::new()
            .env(env(&[
                ("ARUS__KAFKA__BROKERS", "127.0.0.1:9092,127.0.0.1:9093"),
                ("ARUS__KAFKA__PARTITIONS", "6"),
                ("ARUS__KAFKA__TOPIC_PREFIX", "t1-"),
                ("ARUS__INSTANCE_ID", "pod-7"),
                ("ARUS__KAFKA__CLIENT__FETCH_MIN_BYTES", "1"),
                ("PATH", "/bin"),
            ]))
            .load()
            .expect("overrides load");
        assert_eq!(s.kafka.brokers, "127.0.0.1:9092,127.0.0.1:9093");
        assert_eq!(s.kafka.partitions, 6);
        assert_eq!(s.instance_id, "pod-7");
        assert_eq!(
            s.kafka.topic_name(&s.kafka.topics.page_views),
            "t1-page-views"
        );
        assert_eq!(
            s.kafka.client.get("fetch.min.bytes").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn secrets_come_from_env_lists_and_never_print() {
        let s = Loader::new()
            .env(env(&[
                (
                    "ARUS__SECURITY__INGEST_API_KEYS",
                    "k-one-0123456789, k-two-0123456789,",
                ),
                ("ARUS__SECURITY__ADMIN_TOKEN", "t0p-s3cret-0123456789"),
                ("ARUS__KAFKA__CLIENT__SASL_USERNAME", "svc-arus"),
                ("ARUS__KAFKA__CLIENT__SASL_PASSWORD", "kafka-pw-0123"),
            ]))
            .load()
            .expect("loads");
        assert_eq!(
            s.kafka.client.get("sasl.password").map(String::as_str),
            Some("kafka-pw-0123")
        );
        let keys: Vec<&str> = s
            .security
            .ingest_api_keys
            .iter()
            .map(|k| k.expose())
            .collect();
        assert_eq!(keys, vec!["k-one-0123456789", "k-two-0123456789"]);
        assert_eq!(s.security.admin_token.expose(), "t0p-s3cret-0123456789");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("t0p-s3cret")
                && !shown.contains("k-one")
                && !shown.contains("kafka-pw"),
            "{shown}"
        );
        assert!(shown.contains(r#""sasl.username": "svc-arus""#), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn bad_env_names_the_variable() {
        let err = Loader::new()
            .env(env(&[("ARUS__KAFKA__PARTITIONS", "many")]))
            .load()
            .expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "ARUS__KAFKA__PARTITIONS: expected an integer, got \"many\""
        );
        let err = Loader::new()
            .env(env(&[("ARUS__KAFKA__BROKER", "x:1")]))
            .load()
            .expect_err("misspelt");
        assert_eq!(
            err.to_string(),
            "ARUS__KAFKA__BROKER: unknown setting (no key kafka.broker in config/default.toml)"
        );
    }

    #[test]
    fn validation_names_the_key() {
        let err = Loader::new()
            .env(env(&[("ARUS__KAFKA__PARTITIONS", "0")]))
            .load()
            .expect_err("zero partitions");
        assert_eq!(
            err.to_string(),
            "kafka.partitions: must be at least 1 (got 0)"
        );
        let err = Loader::new()
            .env(env(&[("ARUS__KAFKA__COMPRESSION", "brotli")]))
            .load()
            .expect_err("unknown codec");
        assert!(
            err.to_string()
                .starts_with("configuration is invalid: unknown variant `brotli`"),
            "{err}"
        );
        let err = Loader::new()
            .env(env(&[("ARUS__HTTP__BIND", "localhost")]))
            .load()
            .expect_err("no port");
        assert_eq!(
            err.to_string(),
            "http.bind: not an address with a port, like 0.0.0.0:3000 (got \"localhost\")"
        );
    }

    #[test]
    fn file_layer_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("arus-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[kafka]\npartitionz = 4\n").expect("write");
        let err = Loader::new()
            .file(Some(&path))
            .load()
            .expect_err("unknown key");
        assert!(err.to_string().contains("partitionz"), "{err}");
        std::fs::write(&path, "[kafka]\npartitions = 12\n").expect("write");
        let s = Loader::new().file(Some(&path)).load().expect("file loads");
        assert_eq!(s.kafka.partitions, 12);
        std::fs::remove_dir_all(&dir).ok();
    }
}
