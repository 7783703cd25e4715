//! `cairn`: the collaboration appliance in one binary. This file only parses
//! the command line and hands over to the command's module.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin_cli;
mod admin_credential;
mod api;
mod avdb_cmd;
mod checkpoints;
mod cli;
mod config_cmd;
mod http_service;
mod listeners;
mod logging;
mod media;
mod outbound;
mod run;
mod tls;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Run(args) => run::run(args),
        cli::Command::Config(cmd) => config_cmd::run(cmd),
        cli::Command::Admin(args) => admin_cli::run(args),
        cli::Command::Avdb(cmd) => avdb_cmd::run(cmd),
    }
}
