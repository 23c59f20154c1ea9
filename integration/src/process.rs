//! Child processes of the harness: long-running servers in their own process group, and
//! short commands run to completion under a time limit.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// How long a server gets to exit after SIGTERM before its group is sent SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often the harness looks at a child while it waits.
const POLL: Duration = Duration::from_millis(20);

/// Bytes read from the end of a log when something fails.
pub const LOG_TAIL_BYTES: u64 = 12 * 1024;

/// Lines of a log shown when something fails; Envoy's start-up lines are long and many, and the
/// cause is at the end.
pub const LOG_TAIL_LINES: usize = 40;

/// A server started by the harness, leader of its own process group.
///
/// The group is what gets stopped: SIGTERM, a grace period, then SIGKILL, so helpers the server
/// started (git http-backend and its hooks, say) go too. Only this group is ever signalled.
#[derive(Debug)]
pub struct ManagedProcess {
    /// Name used in messages, e.g. "envoy".
    name: &'static str,
    /// The child; `None` once it has been stopped and reaped.
    child: Option<Child>,
    /// Where its stdout and stderr go.
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command` in a new process group with stdin closed and stdout and stderr appended
    /// to `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> Result<Self> {
        let out = open_append(log)?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io("open", log, e))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command.spawn().map_err(|source| HarnessError::Spawn {
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        Ok(ManagedProcess {
            name,
            child: Some(child),
            log: log.to_owned(),
        })
    }

    /// The component name given at spawn.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its process id (also its process group's), or `None` once it has been stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails with the end of its log if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(self.exited("stopped".to_owned()));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(self.exited(status.to_string()))
            }
            Err(err) => Err(self.exited(format!("cannot wait: {err}"))),
        }
    }

    fn exited(&self, status: String) -> HarnessError {
        HarnessError::Exited {
            component: self.name,
            status,
            log_tail: log_tail(&self.log),
        }
    }

    /// Stops the process group: SIGTERM, up to five seconds for the leader to exit, then
    /// SIGKILL for whatever is left of the group. Safe to call twice.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
            return;
        };
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while !has_exited_unreaped(pgid) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        // The leader is not reaped yet, so its pid (the group id) cannot have been reused: the
        // SIGKILL reaches only this group's stragglers.
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers; a negative pid names the process group. A group that
    // is already gone gives ESRCH, which is the wanted end state.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether `pid` has exited, leaving it a zombie so that its pid stays taken.
fn has_exited_unreaped(pid: libc::pid_t) -> bool {
    // SAFETY: `info` is a plain C struct that waitid fills in; zeroed is a valid initial value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid with WNOWAIT only inspects our own child; `info` outlives the call.
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
    if rc != 0 {
        // Not our child any more (already reaped): treat as exited.
        return true;
    }
    // SAFETY: after a successful waitid, si_pid is set (0 when no child has changed state).
    unsafe { info.si_pid() != 0 }
}

/// Opens a log file for appending, creating it.
pub fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| HarnessError::io("open", path, e))
}

/// The last [`LOG_TAIL_LINES`] lines (within the last [`LOG_TAIL_BYTES`]) of a log file, or a
/// note that it cannot be read.
pub fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let shown = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    let skipped = start > 0 || shown.len() < lines.len();
    let mut out = if skipped {
        "[...]\n".to_owned()
    } else {
        String::new()
    };
    out.push_str(&shown.join("\n"));
    out
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout, lossily decoded.
    pub stdout: String,
    /// Its stderr, lossily decoded.
    pub stderr: String,
}

/// Runs `command` to completion with `stdin` as its input, killing its process group if it runs
/// longer than `limit`. The command runs in its own group so that helpers it starts (git's
/// remote-curl, say) are killed with it.
pub fn run_with_timeout(
    mut command: Command,
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Result<Finished> {
    let shown = describe(&command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
        program: shown.clone(),
        source,
    })?;
    let writer = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || {
            // A command that does not read all its input is its own business.
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(POLL),
            Err(_) => break None,
        }
    };
    let status = match status {
        Some(status) => status,
        None => {
            if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
                signal_group(pgid, libc::SIGKILL);
            }
            let _ = child.wait();
            let stderr = stderr.map(join_reader).unwrap_or_default();
            return Err(HarnessError::Timeout {
                command: shown,
                limit,
                stderr,
            });
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(Finished {
        status,
        stdout: stdout.map(join_reader).unwrap_or_default(),
        stderr: stderr.map(join_reader).unwrap_or_default(),
    })
}

/// Runs `command` like [`run_with_timeout`] and fails unless it exits with status 0.
pub fn run_ok(command: Command, stdin: Option<Vec<u8>>, limit: Duration) -> Result<Finished> {
    let shown = describe(&command);
    let finished = run_with_timeout(command, stdin, limit)?;
    if finished.status.success() {
        Ok(finished)
    } else {
        Err(HarnessError::Command {
            command: shown,
            status: finished.status,
            stderr: finished.stderr,
        })
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn join_reader(handle: thread::JoinHandle<Vec<u8>>) -> String {
    String::from_utf8_lossy(&handle.join().unwrap_or_default()).into_owned()
}

/// The command line for messages; environment values are left out because they may hold tokens.
pub fn describe(command: &Command) -> String {
    let mut shown = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

/// Polls `ready` every 50 ms until it returns true or `limit` passes; `alive` is checked between
/// polls so a server that died is reported at once with its log, not after the deadline.
pub fn wait_ready(
    component: &'static str,
    log: &Path,
    limit: Duration,
    mut alive: impl FnMut() -> Result<()>,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let started = Instant::now();
    loop {
        alive()?;
        if ready() {
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(HarnessError::NotReady {
                component,
                waited: started.elapsed(),
                log_tail: log_tail(log),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_limit_is_killed_with_its_children() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 30 & sleep 30"]);
        let started = Instant::now();
        let err = run_with_timeout(command, None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn stdin_reaches_the_command_and_stdout_comes_back() {
        let finished = run_ok(
            Command::new("cat"),
            Some(b"hello".to_vec()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(finished.stdout, "hello");
    }

    #[test]
    fn a_stopped_server_group_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut command = Command::new("sh");
        // The trap keeps the leader alive through SIGTERM, so the SIGKILL path is taken too.
        command.args(["-c", "trap '' TERM; sleep 60 & echo started; wait"]);
        let mut server = ManagedProcess::spawn("sleeper", command, &log).unwrap();
        let pgid = server.child.as_ref().unwrap().id() as libc::pid_t;
        wait_ready(
            "sleeper",
            &log,
            Duration::from_secs(10),
            || server.check_running(),
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("started")
            },
        )
        .unwrap();
        server.stop();
        // The killed background sleep is reaped by whoever inherits it, which takes a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // SAFETY: signal 0 only asks whether the group still exists.
            let rc = unsafe { libc::kill(-pgid, 0) };
            if rc == -1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process group {pgid} still exists"
            );
            thread::sleep(POLL);
        }
    }
}
