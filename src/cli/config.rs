//! The YAML configuration: its keys are the command's flag names with underscores
//! (`memory_limit: 2G`, `on_bad_rows: quarantine`, `replace_dates: true`), so every flag has its
//! key and a config can drive every command. The original PySpark project's keys are accepted
//! unchanged (`input_clickstream`, `input_purchases`, `input`, `output`).
//!
//! A config is merged by handing its keys to clap as flags, placed before the ones typed on the
//! command line: the same value parsers check both, and a flag typed wins over its key (and
//! over the keys it conflicts with: `--day` over a config's `from`/`to`). A key that no command
//! has is an error, so a typo is not silently ignored; a key of another command is left for it,
//! so one config serves several commands. Relative paths are relative to the working
//! directory, as with the flags.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use super::Cli;

/// Older names of keys, as the original project's configs spell them.
const ALIASES: [(&str, &str); 2] = [
    ("input_clickstream", "clickstream"),
    ("input_purchases", "purchases"),
];

/// Arguments that are not configuration.
const NOT_KEYS: [&str; 5] = ["config", "help", "version", "verbose", "quiet"];

/// A parsed YAML config: key → scalar value, aliases resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub values: BTreeMap<String, Value>,
}

/// A config value: YAML scalars only.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Text(s) => s.clone(),
        }
    }
}

impl Config {
    /// Reads a YAML file of `key: value` lines.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
        Config::parse(path, &text)
    }

    /// Parses YAML text; `path` names it in messages.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Config> {
        let raw: Option<BTreeMap<String, Option<Value>>> =
            serde_saphyr::from_str(text).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a config of `key: value` lines ({e})",
                    path.display()
                )
            })?;
        let mut values = BTreeMap::new();
        for (key, value) in raw.unwrap_or_default() {
            let key = ALIASES
                .iter()
                .find(|(old, _)| *old == key)
                .map_or(key.clone(), |(_, new)| new.to_string());
            if let Some(v) = value {
                values.insert(key, v);
            }
        }
        let config = Config {
            path: path.to_path_buf(),
            values,
        };
        config.check_keys()?;
        Ok(config)
    }

    /// The value of `key`, as text.
    pub fn get(&self, key: &str) -> Option<String> {
        self.values.get(key).map(Value::text)
    }

    /// Refuses keys that no command has.
    fn check_keys(&self) -> anyhow::Result<()> {
        let known = all_keys();
        let unknown: Vec<&String> = self
            .values
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{}: unknown key(s) {}. Keys are the flags' names with underscores: {}",
            self.path.display(),
            unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            known.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}

/// Every key of every command.
pub fn all_keys() -> std::collections::BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut std::collections::BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if !NOT_KEYS.contains(&id) {
                out.insert(id.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut keys = std::collections::BTreeSet::new();
    walk(&Cli::command(), &mut keys);
    keys.extend(ALIASES.iter().map(|(old, _)| old.to_string()));
    keys
}

/// The command line with the config's keys of the chosen command inserted as flags, and those
/// flags (for a note when parsing then fails).
pub fn merge(argv: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, Vec<String>)> {
    let cmd = Cli::command();
    // A first, forgiving parse finds the subcommand and --config (required flags a config
    // supplies are still missing here).
    let Ok(matches) = cmd.clone().ignore_errors(true).try_get_matches_from(&argv) else {
        return Ok((argv, Vec::new()));
    };
    let mut path = Vec::new();
    let mut command = &cmd;
    let mut m: &ArgMatches = &matches;
    while let Some((name, sub)) = m.subcommand() {
        let Some(next) = command.find_subcommand(name) else {
            break;
        };
        path.push(name.to_string());
        command = next;
        m = sub;
    }
    let has_config = command.get_arguments().any(|a| a.get_id() == "config");
    let config_path = match has_config {
        true => m.try_get_one::<PathBuf>("config").ok().flatten().cloned(),
        false => None,
    };
    let Some(config_path) = config_path else {
        return Ok((argv, Vec::new()));
    };
    let config = Config::load(&config_path)?;
    let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let typed: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| given(a.get_id().as_str()))
        .collect();
    let mut flags = Vec::new();
    let mut positionals = Vec::new();
    for (key, value) in &config.values {
        let Some(arg) = command.get_arguments().find(|a| a.get_id() == key) else {
            // A key of another command.
            continue;
        };
        if NOT_KEYS.contains(&key.as_str()) || given(key) {
            continue;
        }
        let conflicts = command.get_arg_conflicts_with(arg);
        let overridden = typed.iter().any(|t| {
            conflicts.iter().any(|c| c.get_id() == t.get_id())
                || command
                    .get_arg_conflicts_with(t)
                    .iter()
                    .any(|c| c.get_id() == arg.get_id())
        });
        if overridden {
            continue;
        }
        if arg.is_positional() {
            positionals.push(OsString::from(value.text()));
            continue;
        }
        let long = arg.get_long().unwrap_or(key.as_str());
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, Value::Bool(true)) => flags.push(format!("--{long}")),
            (ArgAction::SetTrue, Value::Bool(false)) => {}
            (ArgAction::SetTrue, other) => anyhow::bail!(
                "{}: `{key}: {}` must be true or false",
                config.path.display(),
                other.text()
            ),
            _ => flags.push(format!("--{long}={}", value.text())),
        }
    }
    // After the subcommand's name in the command line, before what was typed after it.
    let mut at = 1;
    for name in &path {
        while at < argv.len() && argv[at] != name.as_str() {
            at += 1;
        }
        at += 1;
    }
    let at = at.min(argv.len());
    let mut merged: Vec<OsString> = argv[..at].to_vec();
    merged.extend(flags.iter().map(OsString::from));
    merged.extend(positionals);
    merged.extend_from_slice(&argv[at..]);
    let noted = flags
        .into_iter()
        .map(|f| format!("{f} (from {})", config.path.display()))
        .collect();
    Ok((merged, noted))
}

/// Parses the command line with its config; on a usage error, prints it (clap's message, and
/// which flags came from the config) and returns the exit code.
pub fn parse_with_config(argv: Vec<OsString>) -> Result<Cli, ExitCode> {
    let (argv, noted) = match merge(argv) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {}", super::logging::error_text(&e));
            return Err(ExitCode::from(2));
        }
    };
    let parsed = Cli::command()
        .try_get_matches_from(&argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => Ok(cli),
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            if usage && !noted.is_empty() {
                eprintln!("note: the config gave {}", noted.join(", "));
            }
            Err(ExitCode::from(e.exit_code() as u8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(Path::new("test.yaml"), text)
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("marketing-analytics")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn pyspark_keys_are_accepted() {
        let c = parse(
            "input_clickstream: data/clicks\ninput_purchases: data/purchases\noutput: out/attribution\n",
        )
        .unwrap();
        assert_eq!(c.get("clickstream").as_deref(), Some("data/clicks"));
        assert_eq!(c.get("purchases").as_deref(), Some("data/purchases"));
        assert_eq!(c.get("output").as_deref(), Some("out/attribution"));
    }

    #[test]
    fn pipeline_keys_and_engine() {
        let c = parse(
            "clickstream: a\npurchases: b\noutput: o\nengine: sql\nthreads: 2\ndelimiter: tab\n",
        )
        .unwrap();
        assert_eq!(c.get("engine").as_deref(), Some("sql"));
        assert_eq!(c.get("threads").as_deref(), Some("2"));
        assert_eq!(
            crate::input::parse_delimiter(&c.get("delimiter").unwrap()).unwrap(),
            b'\t'
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("clikstream: a\n").is_err());
        assert!(crate::input::parse_delimiter(";;").is_err());
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
        let with_cluster = parse("cluster: df://h:1\nscratch: s3://b/tmp\n").unwrap();
        assert_eq!(with_cluster.get("cluster").as_deref(), Some("df://h:1"));
        assert_eq!(with_cluster.get("scratch").as_deref(), Some("s3://b/tmp"));
    }

    /// The documented rule: a key is its flag's name with underscores.
    #[test]
    fn every_flag_has_its_key() {
        fn walk(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if let Some(long) = arg.get_long() {
                    assert_eq!(long.replace('-', "_"), id, "{path}: --{long}");
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "marketing-analytics");
        let keys = all_keys();
        for key in [
            "warehouse",
            "from",
            "to",
            "day",
            "quarter",
            "lookback",
            "partition_by",
        ] {
            assert!(keys.contains(key), "{key}");
        }
    }

    #[test]
    fn a_config_fills_what_the_command_line_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "warehouse: wh\nfrom: 2020-10-01\nto: 2020-10-31\noutput: o\nrecompute: true\n\
             clickstream: c\npurchases: p\nthreads: 2\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let (merged, _) = merge(argv(&["period", "--config", config, "--threads", "1"])).unwrap();
        let text: Vec<_> = merged
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        // The raw exports and the warehouse conflict: both keys are handed on only when
        // nothing typed overrides them, and clap then names the conflict.
        assert!(text.contains(&"--output=o".to_string()), "{text:?}");
        assert!(text.contains(&"--recompute".to_string()), "{text:?}");
        assert!(!text.contains(&"--threads=2".to_string()), "{text:?}");
        // A typed --day overrides the config's range, and --warehouse its raw exports.
        let (merged, _) = merge(argv(&[
            "weekly",
            "--warehouse",
            "w2",
            "--day",
            "2020-10-02",
            "--config",
            config,
        ]))
        .unwrap();
        let text: Vec<_> = merged
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        for gone in [
            "--from=2020-10-01",
            "--to=2020-10-31",
            "--clickstream=c",
            "--warehouse=wh",
        ] {
            assert!(!text.contains(&gone.to_string()), "{gone}: {text:?}");
        }
        let cli = <Cli as clap::Parser>::try_parse_from(&merged).unwrap();
        let super::super::Command::PeriodMart(m) = cli.command else {
            panic!("not weekly")
        };
        assert_eq!(m.args.output, PathBuf::from("o"));
        assert!(m.args.recompute.recompute);
        assert_eq!(m.args.source.warehouse, Some(PathBuf::from("w2")));
    }
}
