//! Node configuration: the schema, its documented defaults, and loading.
//!
//! Every other module reads its settings from [`Config`], so this module owns the one
//! place where settings are named, defaulted, layered (built-in defaults < YAML file <
//! `STATEMESH_*` environment overrides) and checked. Bad configuration is refused at
//! startup with messages that name the key, the source and the line, rather than
//! surfacing later as odd runtime behaviour.

mod duration;
mod env;
mod error;
mod load;
mod locate;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigProblem};
pub use schema::{
    ApiConfig, ApiRole, ApiTls, ApiToken, BoundedFallback, Compression, ConcurrencyConfig, ConcurrencyModel, Config,
    Consensus, ConsistencyLevel, Delivery, DistributedConfig, HistoryConfig, LogConfig, LogFormat,
    NamespaceConsistency, NamespacePolicy, NamespacesConfig, NodeConfig, NotificationsConfig, P2pConfig,
    SecurityConfig, SerializationFormat, SnapshotsConfig, StorageConfig, StorageType,
};

pub(crate) use validate::check_token_entry;

use load::Document;

const DEFAULT_YAML: &str = include_str!("default.yaml");

/// Largest configuration file read. The documented default file is about 7 KiB; a file a
/// hundred times that is a mistake (a log or a binary passed by accident), and reading it
/// whole before parsing would let its size decide the node's memory use.
pub const CONFIG_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Reads at most `max` bytes of UTF-8 text from `path`; `None` if the file holds more.
fn read_bounded(path: &Path, max: usize) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Ok(None);
    }
    String::from_utf8(bytes).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl Config {
    /// Built-in defaults, overlaid by `file` (if any), overlaid by the `STATEMESH_<SECTION>__<KEY>`
    /// variables in `env`; then validated. Pass `std::env::vars()` for the process environment.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let Some(path) = file else {
            return load::load(None, env);
        };
        let name = path.display().to_string();
        let problem =
            |message: String| ConfigProblem { source: Some(name.clone()), key: None, message, location: None };
        let text = read_bounded(path, CONFIG_FILE_BYTES_MAX)
            .map_err(|err| problem(format!("cannot read configuration file: {err}")))?
            .ok_or_else(|| problem(format!("configuration file is larger than {CONFIG_FILE_BYTES_MAX} bytes")))?;
        load::load(Some(Document { name: &name, text: &text }), env)
    }

    /// Parses and validates YAML text of at most [`CONFIG_FILE_BYTES_MAX`] bytes;
    /// `source_name` labels it in error messages.
    /// No environment overrides are applied.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        load::load(Some(Document { name: source_name, text }), std::iter::empty())
    }

    /// Range and consistency checks; every problem found is reported, one per line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// The default configuration as commented YAML, a starting point for a config file.
    pub fn default_yaml() -> &'static str {
        DEFAULT_YAML
    }

    /// The effective configuration as YAML (for `config show`); it loads back unchanged.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|err| format!("# cannot render configuration: {err}\n"))
    }

    /// The database directory: `storage.path`, else `<node.data_dir>/db`.
    pub fn db_path(&self) -> PathBuf {
        self.storage.path.clone().unwrap_or_else(|| self.node.data_dir.join("db"))
    }

    /// The snapshot directory: `snapshots.path`, else `<node.data_dir>/snapshots`.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.snapshots.path.clone().unwrap_or_else(|| self.node.data_dir.join("snapshots"))
    }
}
