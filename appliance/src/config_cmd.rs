//! `cairn config check | show | interfaces`.

use std::process::ExitCode;

use cairn_config::{interfaces, Config};

use crate::cli::ConfigCommand;

/// Runs one `cairn config` command.
pub fn run(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Check { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        ConfigCommand::Show { config } => {
            let loaded = match config {
                Some(path) => Config::load(&path),
                None => Ok(Config::embedded_default()),
            };
            match loaded {
                Ok(config) => {
                    print!("{}", config.to_toml_redacted());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            }
        }
        ConfigCommand::Interfaces => {
            for nic in interfaces::list() {
                println!("{nic}");
            }
            ExitCode::SUCCESS
        }
    }
}
