//! The control socket: a Unix socket on which a running daemon takes one admin command per
//! connection and answers with its exit code and text.
//!
//! Frames are a 4-byte big-endian length and a postcard body, so any command and any output
//! (passwords with spaces, queue listings with newlines) cross without quoting rules.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::commands::AdminCommand;

/// The default place of the control socket.
pub const DEFAULT_CONTROL: &str = "/run/postern/control.sock";

/// The largest frame either side accepts: a queue listing of many thousand messages fits.
const MAX_FRAME: u32 = 64 << 20;

/// How long the client waits for an answer before it says the daemon does not answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the daemon answers to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The exit code the command line returns: 0 done, 1 failed, 2 refused as asked.
    pub exit: i32,
    pub text: String,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply {
            exit: 0,
            text: text.into(),
        }
    }

    pub fn failed(text: impl Into<String>) -> Reply {
        Reply {
            exit: 1,
            text: text.into(),
        }
    }
}

/// One frame of the daemon's answer: a long listing comes in parts as it is made (the
/// client prints each as it comes), then the reply with the exit code and the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Part(String),
    Last(Reply),
}

/// Why the command line could not talk to the daemon.
#[derive(Debug)]
pub enum ControlError {
    /// No socket there, or nobody listening on it.
    NotRunning(PathBuf, io::Error),
    /// Connected, but no answer in time or the connection broke.
    NoAnswer(PathBuf, io::Error),
    /// The answer was not a frame this version understands.
    BadAnswer(PathBuf),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotRunning(p, e) => {
                write!(
                    f,
                    "cannot reach the postern daemon at {}: {e} (is `postern run` up?)",
                    p.display()
                )
            }
            ControlError::NoAnswer(p, e) => write!(
                f,
                "the postern daemon at {} did not answer: {e}",
                p.display()
            ),
            ControlError::BadAnswer(p) => {
                write!(
                    f,
                    "the postern daemon at {} gave an answer this version cannot read",
                    p.display()
                )
            }
        }
    }
}

impl std::error::Error for ControlError {}

/// Sends one command to the daemon listening at `path` and waits for its reply (a reply in
/// parts comes back whole).
pub fn request(path: &Path, command: &AdminCommand) -> Result<Reply, ControlError> {
    let mut parts = String::new();
    let mut reply = request_to(path, command, |p| {
        parts.push_str(p);
        true
    })?;
    parts.push_str(&reply.text);
    reply.text = parts;
    Ok(reply)
}

/// Sends one command and hands each part of a long answer to `part` as it comes (false:
/// stop reading, the answer is not wanted); returns the last frame's reply.
pub fn request_to(
    path: &Path,
    command: &AdminCommand,
    mut part: impl FnMut(&str) -> bool,
) -> Result<Reply, ControlError> {
    let mut stream =
        UnixStream::connect(path).map_err(|e| ControlError::NotRunning(path.to_path_buf(), e))?;
    let no_answer = |e| ControlError::NoAnswer(path.to_path_buf(), e);
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(no_answer)?;
    stream
        .set_write_timeout(Some(ANSWER_TIMEOUT))
        .map_err(no_answer)?;
    let body =
        postcard::to_allocvec(command).map_err(|_| ControlError::BadAnswer(path.to_path_buf()))?;
    write_frame_blocking(&mut stream, &body).map_err(no_answer)?;
    loop {
        let frame = read_frame_blocking(&mut stream).map_err(no_answer)?;
        match postcard::from_bytes(&frame) {
            Ok(Answer::Part(text)) => {
                if !part(&text) {
                    return Ok(Reply::ok(""));
                }
            }
            Ok(Answer::Last(reply)) => return Ok(reply),
            Err(_) => return Err(ControlError::BadAnswer(path.to_path_buf())),
        }
    }
}

fn write_frame_blocking(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn read_frame_blocking(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Reads one command from a connection accepted by the daemon.
pub async fn read_command(stream: &mut tokio::net::UnixStream) -> io::Result<AdminCommand> {
    let len = stream.read_u32().await?;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes the daemon's reply: the last frame of its answer.
pub async fn write_reply(stream: &mut tokio::net::UnixStream, reply: Reply) -> io::Result<()> {
    write_answer(stream, &Answer::Last(reply)).await
}

/// Writes one part of a long answer.
pub async fn write_part(stream: &mut tokio::net::UnixStream, text: String) -> io::Result<()> {
    write_answer(stream, &Answer::Part(text)).await
}

async fn write_answer(stream: &mut tokio::net::UnixStream, answer: &Answer) -> io::Result<()> {
    let body = postcard::to_allocvec(answer).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or_else(|| io::Error::other("reply too large"))?;
    stream.write_u32(len).await?;
    stream.write_all(&body).await?;
    stream.flush().await
}
