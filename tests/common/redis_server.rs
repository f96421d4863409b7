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

/// A replica of the node on `port`, of its own; returns once it is in sync.
pub fn start_replica_of(port: u16) -> Started {
    let replica_of = format!("--replicaof 127.0.0.1 {port}");
    let started = start_nodes_with(
        1,
        false,
        &[
            "--enable-debug-command yes",
            "--repl-diskless-sync-delay 0",
            &replica_of,
        ],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !command(started.ports[0], "INFO replication").contains("master_link_status:up") {
        assert!(Instant::now() < deadline, "the replica did not get in sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    started
}

/// Sends SIGSTOP (`stop`) or SIGCONT to the server on `port`.
pub fn pause_server(port: u16, stop: bool) {
    let info = command(port, "INFO server");
    let pid = match stop {
        true => info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no process_id from the node on {port}: {info}")),
        false => PAUSED.lock().unwrap().remove(&port).expect("paused before"),
    };
    if stop {
        PAUSED.lock().unwrap().insert(port, pid.clone());
    }
    let signal = if stop { "-STOP" } else { "-CONT" };
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The pids of servers paused by [`pause_server`] (a paused server cannot say its pid).
static PAUSED: std::sync::Mutex<std::collections::BTreeMap<u16, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A node that speaks TLS only, with a CA and certificate made for it by `openssl`; returns the
/// server and the CA certificate (PEM). `urls` are `rediss://` URLs.
pub fn start_tls() -> (Started, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("tjs-tls-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    remove_when_we_exit(&dir);
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
    remove_when_we_exit(&dir);
    let mut ports = Vec::new();
    for _ in 0..count {
        let port = port.unwrap_or_else(|| free_port(cluster));
        spawn_node(&dir, &node_args(&dir, port, cluster, extra, 2000), port);
        ports.push(port);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in &ports {
        wait_ready(&dir, *port, deadline, ready);
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

/// The command line of one node on `port`, keeping its files (and, in a cluster, its
/// `nodes-<port>.conf`, so that it rejoins the cluster when started again) in `dir`.
fn node_args(
    dir: &std::path::Path,
    port: u16,
    cluster: bool,
    extra: &[&str],
    node_timeout_ms: u64,
) -> Vec<String> {
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
        args.push(format!("--cluster-node-timeout {node_timeout_ms}"));
    }
    args
}

/// Starts `redis-server` with `args` under a shell that stops it as soon as this test process
/// is gone, so no server outlives the tests even when they panic or are killed.
fn spawn_node(dir: &std::path::Path, args: &[String], port: u16) {
    let script = format!(
        "redis-server {} >>{}/redis-{port}.log 2>&1 & child=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done; \
         kill -CONT $child 2>/dev/null; kill $child 2>/dev/null; wait $child 2>/dev/null",
        args.join(" "),
        dir.display(),
        parent = std::process::id(),
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
}

/// Removes `dir` once this test process is gone (not when one of its servers stops: a node
/// killed by a test is started again from the files there).
fn remove_when_we_exit(dir: &std::path::Path) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; rm -rf {dir}",
        parent = std::process::id(),
        dir = dir.display(),
    );
    if let Ok(mut shell) = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        std::thread::spawn(move || shell.wait());
    }
}

fn wait_ready(dir: &std::path::Path, port: u16, deadline: Instant, ready: &dyn Fn(u16) -> bool) {
    while !ready(port) {
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(dir.join(format!("redis-{port}.log"))).unwrap_or_default();
            panic!(
                "redis-server did not start on port {port}; is the `redis-server` binary installed \
                 (Debian package redis-server)? Or set REDIS_URL. Log: {log}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one command in RESP (any size, binary-safe) and returns the first line of the reply.
pub fn command_args(port: u16, args: &[&[u8]]) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    if stream.write_all(&request).is_err() {
        return String::new();
    }
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut reader, &mut line);
    line.trim_end().to_owned()
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

/// A master's port and its slot ranges.
type Owner = (u16, Vec<(u16, u16)>);

/// One node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub port: u16,
    pub master: bool,
    /// The id of its master, for a replica.
    pub master_id: Option<String>,
    /// Flagged `fail` or `fail?` by the node asked.
    pub failing: bool,
    /// Slot ranges it serves, for a master.
    pub slots: Vec<(u16, u16)>,
}

/// A Redis Cluster of three masters with one replica each, private to one test, which may
/// kill, pause, restart and fail over its nodes. Every node is stopped when the test process
/// ends (and when this is dropped).
pub struct ReplicatedCluster {
    started: Started,
    node_timeout: Duration,
    args: std::collections::HashMap<u16, Vec<String>>,
    pids: std::sync::Mutex<std::collections::HashMap<u16, u32>>,
    /// Nodes killed and not started again.
    down: std::sync::Mutex<std::collections::HashSet<u16>>,
    /// Nodes stopped with SIGSTOP and not resumed.
    paused: std::sync::Mutex<std::collections::HashSet<u16>>,
}

impl ReplicatedCluster {
    /// Six nodes on free ports (three masters, three replicas) with this
    /// `cluster-node-timeout`, and `extra` arguments for every node; returns once every node
    /// says the cluster is ok and every replica is in sync.
    pub fn start(node_timeout: Duration, extra: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tjs-failover-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&dir).expect("temp dir for redis-server");
        remove_when_we_exit(&dir);
        let mut args = std::collections::HashMap::new();
        let mut ports = Vec::new();
        for _ in 0..6 {
            let port = loop {
                let port = free_port(true);
                if !ports.contains(&port) {
                    break port;
                }
            };
            // Replicas get their first copy at once (no 5 s wait for others to join a
            // diskless sync): a replica that never synced cannot take over.
            let mut extra = extra.to_vec();
            extra.push("--repl-diskless-sync-delay 0");
            let node = node_args(&dir, port, true, &extra, node_timeout.as_millis() as u64);
            spawn_node(&dir, &node, port);
            args.insert(port, node);
            ports.push(port);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &ports {
            wait_ready(&dir, *port, deadline, &|port| {
                command(port, "PING") == "+PONG"
            });
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli is needed to create the test cluster (Debian package redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self {
            started: Started {
                urls: ports
                    .iter()
                    .map(|p| format!("redis://127.0.0.1:{p}"))
                    .collect(),
                ports: ports.clone(),
                dir,
                tls_ca: None,
            },
            node_timeout,
            args,
            pids: Default::default(),
            down: Default::default(),
            paused: Default::default(),
        };
        for port in &ports {
            cluster.record_pid(*port);
        }
        cluster.wait_healthy(Duration::from_secs(60));
        // `--cluster create` names the replicas last; every node learns of them by gossip.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ports.iter().all(|p| {
            cluster
                .topology(*p)
                .iter()
                .filter(|n| n.master_id.is_some())
                .count()
                == 3
        }) {
            assert!(Instant::now() < deadline, "the replicas were not set up");
            std::thread::sleep(Duration::from_millis(50));
        }
        for master in cluster.masters() {
            cluster.wait_in_sync(cluster.replica_of(master.port), Duration::from_secs(60));
        }
        cluster
    }

    /// The URLs of every node, as `REDIS_URL` takes them (comma-separated).
    pub fn redis_url(&self) -> String {
        self.started.urls.join(",")
    }

    pub fn ports(&self) -> &[u16] {
        &self.started.ports
    }

    pub fn node_timeout(&self) -> Duration {
        self.node_timeout
    }

    fn record_pid(&self, port: u16) {
        let info = command(port, "INFO server");
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no process_id from the node on {port}: {info}"));
        self.pids.lock().unwrap().insert(port, pid);
    }

    fn signal(&self, port: u16, signal: &str) {
        let pid = self.pids.lock().unwrap()[&port];
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Nodes that are running and not paused.
    pub fn up(&self) -> Vec<u16> {
        let down = self.down.lock().unwrap().clone();
        let paused = self.paused.lock().unwrap().clone();
        self.started
            .ports
            .iter()
            .copied()
            .filter(|p| !down.contains(p) && !paused.contains(p))
            .collect()
    }

    /// The cluster as `port` sees it.
    pub fn topology(&self, port: u16) -> Vec<NodeView> {
        command(port, "CLUSTER NODES")
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 8 {
                    return None;
                }
                let address = fields[1].split('@').next()?;
                let port = address.rsplit(':').next()?.parse().ok()?;
                let flags = fields[2];
                let slots = fields[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .filter_map(|s| match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|one| (one, one)),
                    })
                    .collect();
                Some(NodeView {
                    id: fields[0].to_owned(),
                    port,
                    master: flags.contains("master"),
                    master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                    failing: flags.contains("fail"),
                    slots,
                })
            })
            .collect()
    }

    /// The masters serving slots, as the first node up sees them.
    pub fn masters(&self) -> Vec<NodeView> {
        let from = self.up()[0];
        self.topology(from)
            .into_iter()
            .filter(|n| n.master && !n.slots.is_empty())
            .collect()
    }

    /// The replica of the master on `port`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let from = *self.up().iter().find(|p| **p != master).expect("a node up");
        let nodes = self.topology(from);
        let id = &nodes
            .iter()
            .find(|n| n.port == master)
            .expect("the master")
            .id;
        nodes
            .iter()
            .find(|n| n.master_id.as_ref() == Some(id))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no replica of {master}: {nodes:?}"))
    }

    /// The master holding the most keys: the one a test's sessions live on.
    pub fn busiest_master(&self) -> u16 {
        self.masters()
            .iter()
            .map(|m| {
                let size: u64 = command(m.port, "DBSIZE")
                    .trim_start_matches(':')
                    .parse()
                    .unwrap_or(0);
                (size, m.port)
            })
            .max()
            .expect("masters")
            .1
    }

    /// `kill -9`: the node dies with whatever it had not replicated yet.
    pub fn kill(&self, port: u16) {
        self.signal(port, "-KILL");
        self.down.lock().unwrap().insert(port);
    }

    /// SIGSTOP: the node stops answering anything, and its open sockets stay open (a VM
    /// pause, a long fork or fsync stall).
    pub fn pause(&self, port: u16) {
        self.signal(port, "-STOP");
        self.paused.lock().unwrap().insert(port);
    }

    pub fn resume(&self, port: u16) {
        self.signal(port, "-CONT");
        self.paused.lock().unwrap().remove(&port);
    }

    /// Starts a killed node again from its `nodes.conf` (empty, since nothing is persisted):
    /// it rejoins the cluster as a replica. Returns once it is in sync with its master.
    pub fn restart(&self, port: u16) {
        spawn_node(&self.started.dir, &self.args[&port], port);
        wait_ready(
            &self.started.dir,
            port,
            Instant::now() + Duration::from_secs(20),
            &|port| command(port, "PING") == "+PONG",
        );
        self.record_pid(port);
        self.down.lock().unwrap().remove(&port);
        self.wait_in_sync(port, Duration::from_secs(60));
    }

    /// Waits until the node on `port` is a replica whose link to its master is up.
    pub fn wait_in_sync(&self, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let info = command(port, "INFO replication");
            if info.contains("role:slave") && info.contains("master_link_status:up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {port} did not get in sync: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `CLUSTER FAILOVER` on a replica: a graceful hand-over, with no write lost. Returns
    /// once the replica says it is a master.
    pub fn graceful_failover(&self, replica: u16) {
        let answer = command(replica, "CLUSTER FAILOVER");
        assert_eq!(answer, "+OK", "CLUSTER FAILOVER on {replica}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !command(replica, "ROLE").contains("master") {
            assert!(Instant::now() < deadline, "{replica} did not take over");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the cluster serves every slot: each node up says `cluster_state:ok`, they agree
    /// on three masters that are up, and each of those says it is a master.
    pub fn healthy(&self) -> bool {
        let up = self.up();
        let mut owners: Option<Vec<Owner>> = None;
        for port in &up {
            if !command(*port, "CLUSTER INFO").contains("cluster_state:ok") {
                return false;
            }
            let mut masters: Vec<Owner> = self
                .topology(*port)
                .into_iter()
                .filter(|n| n.master && !n.slots.is_empty())
                .map(|n| (n.port, n.slots))
                .collect();
            masters.sort();
            if masters.len() != 3 || masters.iter().any(|(p, _)| !up.contains(p)) {
                return false;
            }
            match &owners {
                None => owners = Some(masters),
                Some(seen) if *seen != masters => return false,
                Some(_) => {}
            }
        }
        owners.is_some_and(|masters| {
            masters
                .iter()
                .all(|(port, _)| command(*port, "ROLE").contains("master"))
        })
    }

    /// Waits until [`healthy`](Self::healthy); returns when it was first seen so.
    pub fn wait_healthy(&self, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if self.healthy() {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bytes a master holds for its replicas beyond what their sockets took (`omem` of
    /// its replica clients): what a `kill -9` of it now loses.
    pub fn unsent_to_replicas(&self, master: u16) -> u64 {
        command(master, "CLIENT LIST TYPE replica")
            .split_whitespace()
            .filter_map(|f| f.strip_prefix("omem="))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        let paused = self.paused.lock().unwrap().clone();
        for port in paused {
            self.resume(port);
        }
    }
}
