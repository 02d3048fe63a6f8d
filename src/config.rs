//! YAML configuration.
//!
//! One flat set of keys serves every command: the original PySpark project's per-job keys are
//! accepted unchanged (`input_clickstream`, `input_purchases`, `output` for the attribution;
//! `input`, `output` for the marts) next to the whole-pipeline keys (`clickstream`,
//! `purchases`, `output`, `engine`, …). Command-line flags override the file. Relative paths
//! are relative to the working directory, as with the flags. Unknown keys are errors, so a typo
//! is not silently ignored.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::jobs::{Api, Engine};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Clickstream input: file, directory or glob.
    #[serde(alias = "input_clickstream")]
    pub clickstream: Option<String>,
    /// Purchases input: file, directory or glob.
    #[serde(alias = "input_purchases")]
    pub purchases: Option<String>,
    /// Input of a mart job: the projection dataset.
    pub input: Option<String>,
    /// Output directory (dataset directory for a single job).
    pub output: Option<String>,
    pub engine: Option<Engine>,
    pub api: Option<Api>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Field delimiter of text inputs: one character, or `tab`.
    pub delimiter: Option<String>,
    /// Cap on the engine's memory, such as `512M`.
    pub memory_limit: Option<String>,
    /// `fail` or `quarantine`.
    pub on_bad_rows: Option<crate::input::BadRows>,
    /// Ballista scheduler to run the queries on, `df://HOST:PORT`.
    pub cluster: Option<String>,
    /// Where intermediate files go: a path or object-store URL (`s3://bucket/tmp`).
    pub scratch: Option<String>,
}

impl Config {
    /// Reads a YAML file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_yaml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{}: {e}. Keys: clickstream|input_clickstream, purchases|input_purchases, input, output, engine, api, threads, delimiter, memory_limit, on_bad_rows, cluster, scratch",
                path.display()
            ))
        })
    }
}

/// Parses a delimiter given as one ASCII character or the word `tab`.
pub fn parse_delimiter(s: &str) -> Result<u8> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        s if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        other => Err(Error::Config(format!(
            "delimiter {other:?} must be a single ASCII character or 'tab'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyspark_keys_are_accepted() {
        let c: Config = serde_yaml::from_str(
            "input_clickstream: data/clicks\ninput_purchases: data/purchases\noutput: out/attribution\n",
        )
        .unwrap();
        assert_eq!(c.clickstream.as_deref(), Some("data/clicks"));
        assert_eq!(c.purchases.as_deref(), Some("data/purchases"));
        assert_eq!(c.output.as_deref(), Some("out/attribution"));
    }

    #[test]
    fn pipeline_keys_and_engine() {
        let c: Config = serde_yaml::from_str(
            "clickstream: a\npurchases: b\noutput: o\nengine: sql\nthreads: 2\ndelimiter: tab\n",
        )
        .unwrap();
        assert_eq!(c.engine, Some(Engine::Sql));
        assert_eq!(c.threads, Some(2));
        assert_eq!(
            parse_delimiter(c.delimiter.as_deref().unwrap()).unwrap(),
            b'\t'
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(serde_yaml::from_str::<Config>("clikstream: a\n").is_err());
        assert!(parse_delimiter(";;").is_err());
    }

    #[test]
    fn the_example_configs_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
        assert!(n >= 4, "only {n} example configs in {dir:?}");
        let with_cluster: Config =
            serde_yaml::from_str("cluster: df://h:1\nscratch: s3://b/tmp\n").unwrap();
        assert_eq!(with_cluster.cluster.as_deref(), Some("df://h:1"));
        assert_eq!(with_cluster.scratch.as_deref(), Some("s3://b/tmp"));
    }
}
