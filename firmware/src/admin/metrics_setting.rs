//! `postern metrics show|set|off`: the Prometheus endpoint as a stored setting of the box (its
//! config slot), off until an admin sets it. The daemon reads it at start ([`stored`]) and a
//! change takes effect at once ([`super::metrics_endpoint`]): a setting it accepted is a setting
//! it serves.

use super::commands::MetricsCommand;
use super::{Handles, Reply};
use crate::config::NetworkList;
use crate::config::stored::{BoxConfig, MetricsSetting, StoredError};
use crate::spool::{Region, SpoolError, SpoolHandle};

/// Why the setting could not be read or written.
#[derive(Debug)]
pub enum SettingError {
    Flash(SpoolError),
    Stored(StoredError),
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingError::Flash(e) => write!(f, "flash: {e}"),
            SettingError::Stored(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SettingError {}

async fn box_config(spool: &SpoolHandle) -> Result<BoxConfig, SettingError> {
    match spool.read_slot(Region::Config).await {
        Ok(Some(bytes)) => BoxConfig::decode(&bytes).map_err(SettingError::Stored),
        Ok(None) => Ok(BoxConfig::default()),
        Err(e) => Err(SettingError::Flash(e)),
    }
}

/// The stored endpoint, with its allow-list parsed.
pub async fn stored(
    spool: &SpoolHandle,
) -> Result<Option<(std::net::SocketAddr, NetworkList)>, SettingError> {
    let Some(m) = box_config(spool).await?.metrics else {
        return Ok(None);
    };
    // Checked when set: a list that does not parse now was damaged on flash.
    let allow = m.allow.parse().map_err(|_| {
        SettingError::Stored(StoredError::Corrupt(format!(
            "metrics allow-list {:?}",
            m.allow
        )))
    })?;
    Ok(Some((m.listen, allow)))
}

async fn store(spool: &SpoolHandle, metrics: Option<MetricsSetting>) -> Result<(), SettingError> {
    let mut config = box_config(spool).await?;
    config.metrics = metrics;
    spool
        .write_slot(Region::Config, config.encode())
        .await
        .map_err(SettingError::Flash)
}

pub async fn run(h: &Handles, cmd: MetricsCommand) -> Reply {
    let spool = &h.spool;
    match cmd {
        MetricsCommand::Show => match box_config(spool).await {
            Ok(BoxConfig {
                metrics: Some(m), ..
            }) => Reply::ok(format!(
                "metrics: http://{}/metrics for {}\n",
                m.listen, m.allow
            )),
            Ok(_) => Reply::ok("metrics: off\n"),
            Err(e) => Reply::failed(format!("{e}\n")),
        },
        MetricsCommand::Set { listen, allow } => {
            let nets: NetworkList = match allow.parse() {
                Ok(n) => n,
                Err(e) => return Reply::failed(format!("--allow: {e}\n")),
            };
            if nets.networks().is_empty() {
                return Reply::failed("--allow: no network given: nobody could scrape\n");
            }
            let allow = nets.to_string();
            // Bound before it is stored: an address the box cannot serve is not accepted.
            let prepared = match &h.metrics {
                Some(endpoint) => match endpoint.prepare(listen).await {
                    Ok(p) => Some(p),
                    Err(e) => {
                        return Reply::failed(format!(
                            "not changed: cannot listen on {listen}: {e}\n"
                        ));
                    }
                },
                None => None,
            };
            let setting = MetricsSetting {
                listen,
                allow: allow.clone(),
            };
            if let Err(e) = store(spool, Some(setting)).await {
                return Reply::failed(format!("not changed: {e}\n"));
            }
            let url = format!("http://{listen}/metrics for {allow}");
            Reply::ok(match (&h.metrics, prepared) {
                (Some(endpoint), Some(p)) => match endpoint.apply(Some((p, nets)), h).await {
                    None => format!("metrics: {url}\n"),
                    Some(pinned) => pinned_note(&url, pinned),
                },
                _ => format!("metrics: {url}, from the next start of the services\n"),
            })
        }
        MetricsCommand::Off => {
            if let Err(e) = store(spool, None).await {
                return Reply::failed(format!("not changed: {e}\n"));
            }
            Reply::ok(match &h.metrics {
                Some(endpoint) => match endpoint.apply(None, h).await {
                    None => "metrics: off\n".to_string(),
                    Some(pinned) => pinned_note("off", pinned),
                },
                None => "metrics: off from the next start of the services\n".to_string(),
            })
        }
        // Answered by the caller, which has the handles a scrape reads.
        MetricsCommand::Scrape => Reply::failed("scrape needs the running services\n"),
    }
}

/// Stored, but `--metrics` holds the endpoint while these services run.
fn pinned_note(what: &str, pinned: std::net::SocketAddr) -> String {
    format!(
        "metrics: stored ({what}); these services keep http://{pinned}/metrics, given with \
         --metrics at their start, until they start without it\n"
    )
}
