//! Shared harness for end-to-end tests: a real `rill broker` process on a free loopback port,
//! in its own temporary data directory, that can be stopped cleanly, killed with SIGKILL and
//! restarted on the same directory.
#![allow(dead_code)]

pub mod cluster;
pub mod cluster_proc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A broker process under test.
pub struct BrokerProc {
    child: Option<Child>,
    /// `host:port` it listens on.
    pub addr: String,
    dir: PathBuf,
    settings: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl BrokerProc {
    /// Start a broker in a fresh temporary directory with `--set` settings like `num.partitions=3`.
    pub fn start(settings: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        let (child, addr) = spawn(&dir, &settings, "127.0.0.1:0");
        Self { child: Some(child), addr, dir, settings, _tmp: Some(tmp) }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Process id of the running broker (for /proc checks such as its memory use).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait().expect("wait");
            assert!(status.success(), "broker exited with {status} after SIGTERM");
        }
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            let _ = c.wait();
        }
    }

    /// Start again on the same directory and the same port (so clients' bootstrap stays valid).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker before restarting it");
        let (child, addr) = spawn(&self.dir, &self.settings, &self.addr);
        assert_eq!(addr, self.addr);
        self.child = Some(child);
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(dir: &Path, settings: &[String], listen: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
    cmd.arg("broker").arg("--data-dir").arg(dir).arg("--listen").arg(listen);
    for s in settings {
        cmd.arg("--set").arg(s);
    }
    cmd.env("RILL_LOG", std::env::var("RILL_LOG").unwrap_or_else(|_| "warn".into()));
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn rill broker");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut line).expect("read broker banner");
    let addr = line
        .trim()
        .strip_prefix("rill broker listening on ")
        .unwrap_or_else(|| panic!("unexpected broker banner: {line:?}"))
        .to_string();
    // Keep draining stdout so the broker never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, addr)
}

/// Path of a test's Python script under tests/interop.
pub fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

/// Run a program to completion; panic with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? .ci/run installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A seed from RILL_TEST_SEED or the clock, printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("RILL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("{test}: seed {seed} (replay with RILL_TEST_SEED={seed})");
    seed
}

/// Run the `rill` binary with `args`.
pub fn rill(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rill")).args(args).output().expect("run rill")
}

/// Run `rill ARGS`, which must succeed; returns its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = rill(args);
    assert!(out.status.success(), "rill {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Run `rill ARGS`, which must fail with exactly one line on stderr, starting with `rill:`, and
/// nothing on stdout; returns that line.
pub fn fails(args: &[&str]) -> String {
    let out = rill(args);
    assert!(!out.status.success(), "rill {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "rill {args:?}: expected one error line, got:\n{err}");
    assert!(lines[0].starts_with("rill: "), "rill {args:?}: {err}");
    assert!(out.stdout.is_empty(), "rill {args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    lines[0].to_string()
}

/// A broker in this process on a free loopback port, in `dir`, without the group's initial
/// rebalance delay (tests that read its metrics or need no process of their own).
pub async fn embedded_broker(dir: &Path) -> rill_broker::Broker {
    let mut config = rill_broker::BrokerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().expect("an address");
    config.group.initial_rebalance_delay_ms = 0;
    rill_broker::Broker::start(config).await.expect("start an embedded broker")
}

/// Create `topics` as (name, partitions) with one replica and default configs.
pub async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    use rill_core::client::{Admin, Client, ClientConfig, NewTopic};
    let client = Client::connect(ClientConfig::new(bootstrap)).await.expect("connect");
    let topics: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic {
            name: name.to_string(),
            partitions: *partitions,
            replication_factor: 1,
            configs: Default::default(),
        })
        .collect();
    Admin::new(&client).create_topics(&topics, false).await.expect("create topics");
}
