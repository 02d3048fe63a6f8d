//! Log output and how an error is shown.
//!
//! `-v`/`-q` set the level of this program's own lines; `-vv` adds DataFusion's and Ballista's
//! debug lines. `MARKETING_ANALYTICS_LOG` (a tracing filter such as `marketing_analytics=debug`)
//! replaces both, and a filter that does not parse is an error, not a silent default.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable that holds a log filter.
pub const LOG_ENV: &str = "MARKETING_ANALYTICS_LOG";

/// The filter for `-v`/`-q` counts.
fn filter_for(verbose: u8, quiet: u8) -> String {
    match (verbose as i8) - (quiet as i8) {
        i8::MIN..=-2 => "error".into(),
        -1 => "warn".into(),
        0 => "marketing_analytics=info,warn".into(),
        1 => "marketing_analytics=debug,info".into(),
        _ => "marketing_analytics=trace,debug".into(),
    }
}

/// How log lines are written (`--log-format`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Text lines, for people.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format): timestamp, level, fields
    /// (the message and counts), target, and the spans (run id, job).
    Json,
}

/// Installs the logger on stderr.
pub fn init(verbose: u8, quiet: u8, format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(text) if !text.trim().is_empty() => EnvFilter::builder()
            .with_regex(false)
            .parse(&text)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{LOG_ENV}={text:?} is not a log filter ({e}): give levels such as \
                     `debug` or `marketing_analytics=debug,datafusion=info`"
                )
            })?,
        _ => EnvFilter::new(filter_for(verbose, quiet)),
    };
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => logger
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(verbose >= 2)
            .try_init(),
        LogFormat::Json => logger
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// The error and its causes on one line, each said once: a cause whose text its parent
/// already shows (`path: No such file…` over `No such file…`) is left out.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}

/// Whether the job stopped because the memory pool refused an allocation.
pub fn is_memory_exhausted(e: &anyhow::Error) -> bool {
    use datafusion::error::DataFusionError;
    e.chain().any(|cause| {
        let root = match cause.downcast_ref::<crate::Error>() {
            Some(crate::Error::DataFusion(df)) => df.find_root(),
            _ => match cause.downcast_ref::<DataFusionError>() {
                Some(df) => df.find_root(),
                None => return false,
            },
        };
        matches!(root, DataFusionError::ResourcesExhausted(_))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_its_parents_text_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::from(crate::Error::io(std::path::Path::new("/nope.yaml"), io));
        assert_eq!(error_text(&e), "/nope.yaml: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&e), "outer: inner");
    }

    #[test]
    fn memory_exhaustion_is_found_at_the_root_of_the_error() {
        use datafusion::error::DataFusionError;
        let root = DataFusionError::ResourcesExhausted("pool".into());
        let wrapped = DataFusionError::Context("sorting".into(), Box::new(root));
        assert!(is_memory_exhausted(&anyhow::Error::from(
            crate::Error::from(wrapped)
        )));
        let other = DataFusionError::Plan("no such column".into());
        assert!(!is_memory_exhausted(&anyhow::Error::from(
            crate::Error::from(other)
        )));
    }

    #[test]
    fn more_verbosity_shows_more() {
        assert_eq!(filter_for(0, 2), "error");
        assert!(filter_for(2, 0).contains("trace") && filter_for(2, 0).ends_with(",debug"));
        assert_ne!(filter_for(1, 0), filter_for(2, 0));
    }
}
