//! The command line: `cairn run` and `cairn config …`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Cairn: mail, directory, files, chats and video in one appliance.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the appliance (the embedded defaults when no --config is given).
    Run(RunArgs),
    /// Check, show or help write the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Args)]
pub struct RunArgs {
    /// The appliance.toml to use instead of the embedded defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The data directory (overrides `data_dir` of the configuration).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: exit 0, or every error and exit 1.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the effective configuration (secrets redacted).
    Show {
        /// The appliance.toml to read instead of the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// List the network interfaces and their addresses.
    Interfaces,
}
