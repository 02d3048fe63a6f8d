//! `marketing-analytics generate`: a synthetic dataset in the real export format.

use std::path::PathBuf;

use super::print::note;
use crate::generate::{self, Mess};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output directory (gets mobile_app_clickstream/, user_purchases/ and truth/).
    #[arg(long, short, value_name = "DIR", alias = "out")]
    pub output: PathBuf,
    /// Number of users.
    #[arg(long, default_value_t = 1000)]
    pub users: u64,
    /// Number of clickstream files, and of purchases files.
    #[arg(long, default_value_t = 4)]
    pub files: usize,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Sessions per user are drawn from 1..=N.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_sessions: u32,
    /// First day of activity (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", default_value = "2020-08-25", value_parser = super::options::parse_day)]
    pub start: i32,
    /// Days of activity.
    #[arg(long, default_value_t = 100)]
    pub days: u32,
    /// Distinct campaigns.
    #[arg(long, default_value_t = 60)]
    pub campaigns: u32,
    /// No mess: every session closed, every purchase matched, no duplicates, one text style.
    #[arg(long)]
    pub clean: bool,
    /// Rate of sessions without app_close.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub unclosed_rate: Option<f64>,
    /// Rate of duplicated clickstream rows.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub duplicate_rate: Option<f64>,
    /// Rate of purchase events outside sessions.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub outside_rate: Option<f64>,
    /// Rate of users whose events are spread over several files.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub split_rate: Option<f64>,
    /// Do not write the ground truth.
    #[arg(long)]
    pub no_truth: bool,
    /// Replace an --output directory that marketing-analytics did not write. A dataset it
    /// generated is replaced as a whole, so no file of an earlier dataset stays.
    #[arg(long)]
    pub overwrite: bool,
    /// YAML configuration file whose keys are these flags' names; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?}: rates are probabilities between 0 and 1")),
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut mess = if args.clean {
        Mess::clean()
    } else {
        Mess::messy()
    };
    for (rate, slot) in [
        (args.unclosed_rate, &mut mess.unclosed),
        (args.duplicate_rate, &mut mess.duplicate_event),
        (args.outside_rate, &mut mess.outside_session),
        (args.split_rate, &mut mess.split_user),
    ] {
        if let Some(r) = rate {
            *slot = r;
        }
    }
    let opts = generate::Options {
        users: args.users,
        files: args.files,
        seed: args.seed,
        max_sessions: args.max_sessions,
        start_day: args.start as i64,
        days: args.days,
        campaigns: args.campaigns,
        mess,
        truth: !args.no_truth,
    };
    let started = std::time::Instant::now();
    let g = generate::generate_output(&opts, &args.output, args.overwrite)?;
    note(format!(
        "{} clickstream rows in {}, {} purchases rows in {}{} ({:.1} s)",
        g.events,
        g.clickstream_dir.display(),
        g.purchase_rows,
        g.purchases_dir.display(),
        g.truth_dir
            .map(|d| format!(", ground truth in {}", d.display()))
            .unwrap_or_default(),
        started.elapsed().as_secs_f64()
    ))
}
