//! Real Redis servers for tests: one node, or a 3-master Redis Cluster, started from the
//! `redis-server` binary on free local ports and stopped when the test process ends.
//!
//! `REDIS_URL` (one node) and `REDIS_CLUSTER_URLS` (comma-separated nodes) point the tests at
//! servers that are already running instead. When neither is set and `redis-server` is missing,
//! the tests fail with a message saying so: they never skip.
//!
//! Shared by the crate's unit tests (through `#[path]`) and the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Servers started by this process, each watched by a shell that stops it when we exit.
pub struct Started {
    pub urls: Vec<String>,
    pub ports: Vec<u16>,
    dir: PathBuf,
    tls_ca: Option<PathBuf>,
}

/// One Redis node for this test process (started once).
pub fn single() -> &'static Started {
    static SINGLE: OnceLock<Started> = OnceLock::new();
    SINGLE.get_or_init(|| {
        if let Ok(url) = std::env::var("REDIS_URL") {
            let url = url.trim().to_owned();
            assert!(!url.is_empty(), "REDIS_URL is set but empty");
            return Started {
                urls: vec![url],
                ports: vec![],
                dir: PathBuf::new(),
                tls_ca: None,
            };
        }
        start_nodes(1, false)
    })
}

/// A 3-master Redis Cluster for this test process (started once).
pub fn cluster() -> &'static Started {
    static CLUSTER: OnceLock<Started> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Ok(urls) = std::env::var("REDIS_CLUSTER_URLS") {
            let urls: Vec<String> = urls
                .split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect();
            assert!(
                urls.len() >= 3,
                "REDIS_CLUSTER_URLS needs the cluster's nodes"
            );
            return Started {
                urls,
                ports: vec![],
                dir: PathBuf::new(),
                tls_ca: None,
            };
        }
        let started = start_nodes(3, true);
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for port in &started.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is needed to create the test cluster (Debian package redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in &started.ports {
            while !command(*port, "CLUSTER INFO").contains("cluster_state:ok") {
                assert!(
                    Instant::now() < deadline,
                    "the test cluster did not become ready"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        started
    })
}

/// A node of its own, for a test that blocks or stops it; stopped when dropped.
pub fn start_private() -> Started {
    start_nodes_with(1, false, &["--enable-debug-command yes"], None)
}

/// A node that speaks TLS only, with a CA and certificate made for it by `openssl`; returns the
/// server and the CA certificate (PEM). `urls` are `rediss://` URLs.
pub fn start_tls() -> (Started, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("tjs-tls-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl is needed to make the test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tjs-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let port = free_port(false);
    let d = dir.display();
    let tls = [
        "--port 0".to_owned(),
        format!("--tls-port {port}"),
        format!("--tls-cert-file {d}/server.crt"),
        format!("--tls-key-file {d}/server.key"),
        format!("--tls-ca-cert-file {d}/ca.crt"),
        "--tls-auth-clients no".to_owned(),
    ];
    let extra: Vec<&str> = tls.iter().map(String::as_str).collect();
    let mut started = start_nodes_with_ready(1, false, &extra, Some(port), &|port| {
        Command::new("redis-cli")
            .args([
                "--tls",
                "--cacert",
                &format!("{d}/ca.crt"),
                "-p",
                &port.to_string(),
                "ping",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
            .unwrap_or(false)
    });
    started.urls = vec![format!("rediss://127.0.0.1:{port}")];
    started.tls_ca = Some(dir.join("ca.crt"));
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    (started, ca)
}

impl Started {
    /// Stops the servers now (as a crash would: nothing saved).
    pub fn stop(&self) {
        for port in &self.ports {
            let _ = command(*port, "SHUTDOWN NOSAVE");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in &self.ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server on {port} did not stop"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts a private single server again on the same port (empty, as after a crash).
    pub fn restart(&mut self) {
        let port = self.ports[0];
        let fresh = start_nodes_with(1, false, &["--enable-debug-command yes"], Some(port));
        self.dir = fresh.dir.clone();
        std::mem::forget(fresh);
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // Only servers this process started; the watchdog shell then cleans up the directory.
        for port in &self.ports {
            match &self.tls_ca {
                Some(ca) => {
                    let _ = Command::new("redis-cli")
                        .args([
                            "--tls",
                            "--cacert",
                            &ca.display().to_string(),
                            "-p",
                            &port.to_string(),
                            "shutdown",
                            "nosave",
                        ])
                        .output();
                }
                None => {
                    let _ = command(*port, "SHUTDOWN NOSAVE");
                }
            }
        }
    }
}

/// A unique key prefix, so tests sharing a server never see each other's keys.
pub fn unique_prefix(name: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tjs-test-{}-{}-{name}-{n}", std::process::id(), nanos())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A port that is free, and (for cluster nodes) whose bus port, +10000, is free too.
fn free_port(cluster: bool) -> u16 {
    for attempt in 0..200u64 {
        let candidate = if cluster {
            20_000 + ((nanos() as u64 + attempt * 7919 + std::process::id() as u64) % 10_000) as u16
        } else {
            match TcpListener::bind("127.0.0.1:0") {
                Ok(l) => l.local_addr().map(|a| a.port()).unwrap_or(0),
                Err(_) => continue,
            }
        };
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if candidate != 0 && free(candidate) && (!cluster || free(candidate + 10_000)) {
            return candidate;
        }
    }
    panic!("no free port for a test redis-server");
}

fn start_nodes(count: usize, cluster: bool) -> Started {
    start_nodes_with(count, cluster, &[], None)
}

fn start_nodes_with(count: usize, cluster: bool, extra: &[&str], port: Option<u16>) -> Started {
    start_nodes_with_ready(count, cluster, extra, port, &|port| {
        command(port, "PING") == "+PONG"
    })
}

fn start_nodes_with_ready(
    count: usize,
    cluster: bool,
    extra: &[&str],
    port: Option<u16>,
    ready: &dyn Fn(u16) -> bool,
) -> Started {
    let dir = std::env::temp_dir().join(format!("tjs-redis-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir).expect("temp dir for redis-server");
    let mut ports = Vec::new();
    for _ in 0..count {
        let port = port.unwrap_or_else(|| free_port(cluster));
        let mut args = vec![
            format!("--port {port}"),
            "--bind 127.0.0.1".to_owned(),
            "--save ''".to_owned(),
            "--appendonly no".to_owned(),
            "--protected-mode no".to_owned(),
            format!("--dir {}", dir.display()),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        if cluster {
            args.push("--cluster-enabled yes".to_owned());
            args.push(format!("--cluster-config-file nodes-{port}.conf"));
            args.push("--cluster-node-timeout 2000".to_owned());
        }
        // The shell starts redis-server and stops it as soon as this test process is gone, so
        // no server outlives the tests even when they panic or are killed.
        let script = format!(
            "redis-server {} >{}/redis-{port}.log 2>&1 & child=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done; \
             kill $child 2>/dev/null; wait $child 2>/dev/null; rm -rf {dir}",
            args.join(" "),
            dir.display(),
            parent = std::process::id(),
            dir = dir.display(),
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        // Reap the shell when it ends (after its server stops), so it leaves no zombie.
        std::thread::spawn(move || watchdog.wait());
        ports.push(port);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in &ports {
        while !ready(*port) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join(format!("redis-{port}.log")))
                    .unwrap_or_default();
                panic!(
                    "redis-server did not start on port {port}; is the `redis-server` binary installed \
                     (Debian package redis-server)? Or set REDIS_URL. Log: {log}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Started {
        urls: ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect(),
        ports,
        dir,
        tls_ca: None,
    }
}

/// Sends one inline command and returns the first line (or bulk body) of the reply.
pub fn command(port: u16, cmd: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(format!("{cmd}\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if text.starts_with('$') {
                    let header_end = text.find("\r\n").unwrap_or(0);
                    let len: usize = text[1..header_end].parse().unwrap_or(0);
                    if text.len() >= header_end + 2 + len {
                        return text[header_end + 2..header_end + 2 + len].to_owned();
                    }
                } else if text.ends_with("\r\n") {
                    return text.trim_end().to_owned();
                }
            }
        }
    }
    text.trim_end().to_owned()
}
