//! `postern diag`: what an admin checks first when mail does not flow, from the box itself:
//! a DNS lookup through the resolver delivery uses, an SMTP conversation with a host (banner,
//! EHLO, QUIT, as a transcript), and an ICMP echo. The console's diagnostics menu runs the same.

pub mod dns;
pub mod ping;
pub mod smtp;

use std::time::Duration;

use super::{BoxFacts, Reply};
use crate::admin::commands::DiagCommand;

/// How long one diagnostic may take in all: the console waits for it.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub async fn run(facts: &BoxFacts, cmd: DiagCommand) -> Reply {
    match cmd {
        DiagCommand::Dns { name } => dns::run(&facts.dns_servers, &name).await,
        DiagCommand::Ping { host, count } => ping::run(&facts.dns_servers, &host, count).await,
        DiagCommand::Smtp { target } => {
            smtp::run(&facts.dns_servers, &facts.hostname, &target, DEADLINE).await
        }
    }
}
