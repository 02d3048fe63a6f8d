//! `marketing-analytics completions SHELL` and `marketing-analytics manpage`: shell completions
//! and a man page generated from the command line's own definitions, so they never drift
//! from `--help`.

use clap::CommandFactory;

use super::Cli;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for. For bash: `marketing-analytics completions bash >
    /// ~/.local/share/bash-completion/completions/marketing-analytics`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "marketing-analytics",
        &mut std::io::stdout(),
    );
    Ok(())
}

/// Writes the man page (roff) to stdout: `marketing-analytics manpage > marketing-analytics.1`.
pub fn manpage() -> anyhow::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(())
}
