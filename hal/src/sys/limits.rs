//! Process resource limits: a mail gateway holds one descriptor per SMTP session, and the usual
//! soft limit of 1024 open files would cap it far below the sessions it is configured for.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit; returns the limit now in force
/// (`None`: unlimited).
pub fn raise_open_files() -> std::io::Result<Option<u64>> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok(limit.current);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    Ok(limit.maximum)
}

/// The soft limit on open files now (`None`: unlimited).
pub fn open_files() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_reaches_the_hard_one() {
        let hard = getrlimit(Resource::Nofile).maximum;
        assert_eq!(raise_open_files().unwrap(), hard);
        assert_eq!(open_files(), hard);
    }
}
