//! The journey models' options (`--models` and what they are computed with), shared by the
//! commands that compute them.

use crate::journeys::{Model, Options, PathTransform};

#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Journey models")]
pub struct JourneyArgs {
    /// Compute journey attribution models: `all`, or a comma-separated list of first_touch,
    /// last_touch, linear, position_based, time_decay, markov. Writes OUTPUT/attribution_models/
    /// and OUTPUT/conversion_paths/. Off by default: they add about 25 % to a run's time
    /// (docs/performance.md).
    #[arg(long, value_name = "LIST", value_parser = parse_models)]
    pub models: Option<Models>,
    /// Sessions that start more than this many days before a conversion are not on its path.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub lookback_days: u32,
    /// Keep only the last N positions of each path (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub lookback_steps: usize,
    /// How repeated keys on a path are treated.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = PathTransform::Exposure)]
    pub path_transform: PathTransform,
    /// Time decay's half-life: a touchpoint this many days older weighs half as much.
    #[arg(long, value_name = "DAYS", default_value_t = 7.0, value_parser = parse_half_life)]
    pub half_life_days: f64,
    /// Marketing spend (CSV/TSV, gz or not; columns date, campaignId, channelId, spend): each
    /// key's spend and ROAS (attributed revenue / spend) in attribution_models.
    #[arg(long, value_name = "PATH", requires = "models")]
    pub spend: Option<String>,
}

/// The models `--models` names.
#[derive(Debug, Clone, PartialEq)]
pub struct Models(pub Vec<Model>);

fn parse_models(text: &str) -> Result<Models, String> {
    if text.trim() == "all" {
        return Ok(Models(Model::ALL.to_vec()));
    }
    let models = text
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            Model::parse(m).ok_or_else(|| {
                let names: Vec<_> = Model::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown model {m:?}: use all or some of {}",
                    names.join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if models.is_empty() {
        return Err("name at least one model, or all".into());
    }
    Ok(Models(models))
}

fn parse_half_life(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(h) if h.is_finite() && h > 0.0 => Ok(h),
        _ => Err(format!("{text:?} is not a positive number of days")),
    }
}

impl JourneyArgs {
    /// The library's options, when models were asked for.
    pub fn options(&self) -> Option<Options> {
        let models = self.models.as_ref()?;
        Some(Options {
            spend: self.spend.clone(),
            ..Options::new(
                models.0.clone(),
                self.lookback_days,
                self.lookback_steps,
                self.path_transform,
                self.half_life_days,
            )
        })
    }
}
