//! A real etcd for tests: Debian's `etcd` (3.4) on loopback, random free
//! ports, a temporary data directory, one member or a cluster of several.
//!
//! Every member runs under a small `sh` guard that holds the read end of a
//! pipe whose write end only this process has: when the harness drops the
//! member, or the test process dies in any way (panic, abort, SIGKILL), the
//! pipe closes and the guard kills etcd. The temporary directory is removed
//! on drop, or by the guards when the test process died without dropping.
//! Nothing outside 127.0.0.1 is ever bound.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The etcd binary: `$FLOCKER_ETCD`, else `etcd` on the PATH.
pub fn etcd_binary() -> String {
    std::env::var("FLOCKER_ETCD").unwrap_or_else(|_| "etcd".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain `/health` for members whose client port speaks TLS.
    metrics_port: u16,
    tls: bool,
    data_dir: PathBuf,
    log: PathBuf,
    guard: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }
    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// How to start members beyond the defaults: TLS on the client port, a
/// short auth token TTL.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// A directory made by `tests/tls/make-certs.sh`: members serve
    /// `server-cert.pem` on https client URLs and require a client
    /// certificate signed by its `ca.pem` (`--client-cert-auth`). Peers
    /// stay plain.
    pub tls: Option<PathBuf>,
    /// etcd's `--auth-token-ttl` in seconds (etcd's default is 300).
    pub auth_token_ttl: Option<u32>,
}

/// One etcd member or a cluster; stopped and deleted on drop.
pub struct Etcd {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    options: EtcdOptions,
    /// root's password once [`Etcd::enable_auth`] ran.
    root_password: Option<String>,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// One member, healthy on return.
    pub fn start() -> Etcd {
        Etcd::start_cluster(1)
    }

    /// `n` members, all healthy on return. Retries a few times when a port
    /// picked as free was taken before etcd bound it.
    pub fn start_cluster(n: usize) -> Etcd {
        Etcd::start_with(n, EtcdOptions::default())
    }

    /// `n` members started with `options`, all healthy on return.
    pub fn start_with(n: usize, options: EtcdOptions) -> Etcd {
        let mut last = String::new();
        for _ in 0..3 {
            match Etcd::try_start(n, &options) {
                Ok(e) => return e,
                Err(why) => last = why,
            }
        }
        panic!("etcd did not start: {last}");
    }

    fn try_start(n: usize, options: &EtcdOptions) -> Result<Etcd, String> {
        let dir = tempfile::Builder::new()
            .prefix("flocker-etcd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                metrics_port: free_port(),
                tls: options.tls.is_some(),
                data_dir: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                guard: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "flocker-test-{}",
            dir.path()
                .file_name()
                .map_or("x".into(), |f| f.to_string_lossy().into_owned())
        );
        let mut etcd = Etcd {
            members,
            initial_cluster,
            token,
            options: options.clone(),
            root_password: None,
            _dir: dir,
        };
        for i in 0..n {
            etcd.spawn(i)?;
        }
        for i in 0..n {
            etcd.wait_healthy(i, Duration::from_secs(30))?;
        }
        Ok(etcd)
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let m = &self.members[i];
        let mut args = vec![
            "--name".to_string(),
            m.name.clone(),
            "--data-dir".into(),
            m.data_dir.display().to_string(),
            "--listen-client-urls".into(),
            m.client_url(),
            "--advertise-client-urls".into(),
            m.client_url(),
            "--listen-peer-urls".into(),
            m.peer_url(),
            "--initial-advertise-peer-urls".into(),
            m.peer_url(),
            "--initial-cluster".into(),
            self.initial_cluster.clone(),
            "--initial-cluster-token".into(),
            self.token.clone(),
            "--initial-cluster-state".into(),
            "new".into(),
            "--heartbeat-interval".into(),
            "50".into(),
            "--election-timeout".into(),
            "500".into(),
            "--logger".into(),
            "zap".into(),
            "--log-level".into(),
            "warn".into(),
            "--listen-metrics-urls".into(),
            format!("http://127.0.0.1:{}", m.metrics_port),
        ];
        if let Some(dir) = &self.options.tls {
            for (flag, file) in [
                ("--cert-file", "server-cert.pem"),
                ("--key-file", "server-key.pem"),
                ("--trusted-ca-file", "ca.pem"),
            ] {
                args.push(flag.into());
                args.push(dir.join(file).display().to_string());
            }
            args.push("--client-cert-auth".into());
        }
        if let Some(ttl) = self.options.auth_token_ttl {
            args.push("--auth-token-ttl".into());
            args.push(ttl.to_string());
        }
        // The guard: start etcd, wait for stdin to close, kill it. A line
        // "keep" first (a planned stop) keeps the data; a bare end of input
        // (this process died without cleaning up) deletes the whole
        // temporary directory too (every member's guard does; the first wins).
        let script = r#"log="$1"; root="$2"; shift 2; "$@" >>"$log" 2>&1 & pid=$!; x=""; read x; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; if [ "$x" != keep ]; then rm -rf "$root"; fi; exit 0"#;
        let root = m
            .data_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("etcd-guard")
            .arg(&m.log)
            .arg(root)
            .arg(etcd_binary())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn sh for etcd: {e}"))?;
        self.members[i].guard = Some(child);
        Ok(())
    }

    fn health(port: u16) -> bool {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains(r#""health":"true""#)
    }

    fn wait_healthy(&mut self, i: usize, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if Etcd::health(self.members[i].metrics_port) {
                return Ok(());
            }
            if let Some(g) = self.members[i].guard.as_mut() {
                if let Ok(Some(_)) = g.try_wait() {
                    return Err(format!(
                        "member {} exited: {}",
                        self.members[i].name,
                        self.log_tail(i)
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "member {} not healthy after {limit:?}: {}",
            self.members[i].name,
            self.log_tail(i)
        ))
    }

    /// The last lines of a member's log, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// `127.0.0.1:PORT` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// `127.0.0.1:PORT` of one member.
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// The `--store` URL for every member under `prefix` (`""` or `/name`).
    pub fn store_url(&self, prefix: &str) -> String {
        format!("etcd://{}{prefix}", self.endpoints().join(","))
    }

    /// Runs `etcdctl` on the first member as root (once auth is on) and
    /// with the TLS files (when members speak TLS); panics with its output
    /// when it fails.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let mut cmd =
            Command::new(std::env::var("FLOCKER_ETCDCTL").unwrap_or_else(|_| "etcdctl".into()));
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.members[0].client_url()));
        if let Some(dir) = &self.options.tls {
            for (flag, file) in [
                ("--cacert", "ca.pem"),
                ("--cert", "cert.pem"),
                ("--key", "key.pem"),
            ] {
                cmd.arg(format!("{flag}={}", dir.join(file).display()));
            }
        }
        if let Some(pw) = &self.root_password {
            cmd.arg(format!("--user=root:{pw}"));
        }
        let out = cmd.args(args).output().expect("run etcdctl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "etcdctl {args:?}: {text}");
        text
    }

    /// Turns on etcd authentication: a `root` user with `root_password`,
    /// and for each `(user, password, prefix)` a role `<user>-rw` that may
    /// read and write keys under `prefix` only, granted to that user.
    /// Later [`Etcd::client`] and [`Etcd::etcdctl`] calls act as root.
    pub fn enable_auth(&mut self, root_password: &str, users: &[(&str, &str, &str)]) {
        self.etcdctl(&[
            "user",
            "add",
            &format!("root:{root_password}"),
            "--interactive=false",
        ]);
        self.etcdctl(&["user", "grant-role", "root", "root"]);
        for (user, password, prefix) in users {
            let role = format!("{user}-rw");
            self.etcdctl(&["role", "add", &role]);
            self.etcdctl(&[
                "role",
                "grant-permission",
                &role,
                "--prefix=true",
                "readwrite",
                prefix,
            ]);
            self.etcdctl(&[
                "user",
                "add",
                &format!("{user}:{password}"),
                "--interactive=false",
            ]);
            self.etcdctl(&["user", "grant-role", user, &role]);
        }
        self.etcdctl(&["auth", "enable"]);
        self.root_password = Some(root_password.to_string());
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kills one member (SIGKILL) and waits for it to be gone.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut g) = self.members[i].guard.take() {
            if let Some(mut stdin) = g.stdin.take() {
                let _ = stdin.write_all(b"keep\n");
            }
            let start = Instant::now();
            loop {
                match g.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if start.elapsed() < Duration::from_secs(10) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = g.kill();
                        let _ = g.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Freezes a member (SIGSTOP to its etcd): connections are accepted by
    /// the kernel and never answered, like a hung host.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// Thaws a frozen member.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&mut self, i: usize, sig: &str) {
        let guard = self.members[i].guard.as_ref().expect("member running");
        // The guard's only child is the member's etcd.
        let status = Command::new("pkill")
            .args([sig, "-P", &guard.id().to_string()])
            .status()
            .expect("pkill");
        assert!(status.success(), "pkill {sig} -P {}", guard.id());
    }

    /// Kills every member.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
    }

    /// Starts a stopped member again on its data directory and ports.
    pub fn restart(&mut self, i: usize) {
        self.stop(i);
        self.spawn(i).expect("restart etcd member");
    }

    /// Restarts a stopped member and waits for it to be healthy.
    pub fn restart_and_wait(&mut self, i: usize) {
        self.restart(i);
        self.wait_healthy(i, Duration::from_secs(30))
            .expect("restarted member healthy");
    }

    /// Waits for a member to be healthy (it has a leader).
    pub fn wait_member_healthy(&mut self, i: usize) {
        self.wait_healthy(i, Duration::from_secs(30))
            .expect("member healthy");
    }

    /// A raw client on every running member, for tests to read and write
    /// keys directly. (etcd-client's balanced channel keeps sending a share
    /// of requests to a dead member, so stopped ones are left out.)
    pub async fn client(&self) -> etcd_client::Client {
        let eps: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.guard.is_some())
            .map(|m| m.client_url())
            .collect();
        let opts = self.client_options(
            etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(5)),
        );
        etcd_client::Client::connect(eps, Some(opts))
            .await
            .expect("raw etcd client")
    }

    /// Which member leads right now (waits up to 5 s for one).
    pub async fn leader(&self) -> usize {
        for _ in 0..100 {
            for i in 0..self.members.len() {
                if self.members[i].guard.is_none() {
                    continue;
                }
                let opts = self.client_options(
                    etcd_client::ConnectOptions::new()
                        .with_connect_timeout(Duration::from_millis(300))
                        .with_timeout(Duration::from_secs(1)),
                );
                let Ok(c) =
                    etcd_client::Client::connect([self.members[i].client_url()], Some(opts)).await
                else {
                    continue;
                };
                if let Ok(s) = c.maintenance_client().status().await {
                    if s.leader() != 0 && s.header().map(|h| h.member_id()) == Some(s.leader()) {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader");
    }

    /// The harness's own client options: the TLS files, root once auth is on.
    fn client_options(&self, opts: etcd_client::ConnectOptions) -> etcd_client::ConnectOptions {
        let mut opts = opts;
        if let Some(dir) = &self.options.tls {
            let read = |f: &str| std::fs::read(dir.join(f)).expect("read a test certificate");
            let tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read("ca.pem")))
                .identity(etcd_client::Identity::from_pem(
                    read("cert.pem"),
                    read("key.pem"),
                ));
            opts = opts.with_tls(tls);
        }
        if let Some(pw) = &self.root_password {
            opts = opts.with_user("root", pw.as_str());
        }
        opts
    }

    /// Where members keep their data; for tests that look at the files.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Every key under `prefix` as text, read at one revision.
pub async fn dump(client: &etcd_client::Client, prefix: &str) -> BTreeMap<String, String> {
    let mut kv = client.kv_client();
    let resp = kv
        .get(
            format!("{prefix}/"),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .expect("read every key");
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        })
        .collect()
}

/// What the stored records say, checked against each other.
#[derive(Debug, Default)]
pub struct Audit {
    /// name -> (server, state, host ports, ascending and unique)
    pub routes: BTreeMap<String, (String, String, Vec<u16>)>,
    /// (server, port) -> name
    pub ports: BTreeMap<(String, u16), String>,
    pub volumes: BTreeMap<String, String>,
    /// Every inconsistency found; empty when the records agree.
    pub problems: Vec<String>,
}

/// Reads every record under `prefix` and checks SPEC section 5's
/// invariants: each live route's host ports are claimed by it, each port
/// claim belongs to a live route on that server with that port, no host
/// port is held twice on a server (by construction of the keys, and no
/// two live routes list one), each live route's named volumes are claimed
/// for its server.
pub async fn audit(client: &etcd_client::Client, prefix: &str) -> Audit {
    let keys = dump(client, prefix).await;
    let mut a = Audit::default();
    for (k, v) in &keys {
        let rest = &k[prefix.len()..];
        if let Some(name) = rest.strip_prefix("/routes/containers/") {
            match serde_json::from_str::<serde_json::Value>(v) {
                Ok(r) => {
                    let server = r["server"].as_str().unwrap_or_default().to_string();
                    let state = r["state"].as_str().unwrap_or("live").to_string();
                    // Every host port it binds; a record from before
                    // `host_ports` binds the values of its `ports`.
                    let mut ports: Vec<u16> = r["ports"]
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.values())
                        .chain(r["host_ports"].as_array().into_iter().flatten())
                        .filter_map(|p| p.as_u64())
                        .map(|p| p as u16)
                        .collect();
                    ports.sort_unstable();
                    ports.dedup();
                    if r["name"].as_str() != Some(name) {
                        a.problems
                            .push(format!("route key {name} holds name {}", r["name"]));
                    }
                    a.routes.insert(name.to_string(), (server, state, ports));
                }
                Err(e) => a.problems.push(format!("route {name} is not JSON: {e}")),
            }
        } else if let Some(p) = rest.strip_prefix("/ports/") {
            let parsed = p
                .rsplit_once('/')
                .and_then(|(s, n)| n.parse::<u16>().ok().map(|n| (s.to_string(), n)));
            match parsed {
                Some(sp) => {
                    a.ports.insert(sp, v.clone());
                }
                None => a.problems.push(format!("bad port key {k}")),
            }
        } else if let Some(vol) = rest.strip_prefix("/routes/volumes/") {
            a.volumes.insert(vol.to_string(), v.clone());
        }
    }
    let mut held: BTreeSet<(String, u16)> = BTreeSet::new();
    for (name, (server, state, ports)) in &a.routes {
        if state != "live" {
            continue;
        }
        let mut own = ports.clone();
        own.sort_unstable();
        own.dedup();
        for p in own {
            if !held.insert((server.clone(), p)) {
                a.problems.push(format!(
                    "host port {p} on {server} is listed by two live routes"
                ));
            }
            match a.ports.get(&(server.clone(), p)) {
                Some(holder) if holder == name => {}
                Some(holder) => a.problems.push(format!(
                    "live route {name} lists port {p} on {server}, claimed by {holder}"
                )),
                None => a.problems.push(format!(
                    "live route {name} lists port {p} on {server}, unclaimed"
                )),
            }
        }
    }
    for ((server, p), holder) in &a.ports {
        match a.routes.get(holder) {
            Some((s, state, ports)) if s == server && state == "live" && ports.contains(p) => {}
            _ => a.problems.push(format!(
                "port claim {server}/{p} by {holder} has no live route listing it"
            )),
        }
    }
    a
}

/// A TCP forwarder on loopback that a test can cut and restore, to make a
/// client lose its connection (and its watch) while etcd stays up.
pub struct Cut {
    pub addr: SocketAddr,
    enabled: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Cut {
    /// Forwards a fresh loopback port to `target` (`127.0.0.1:PORT`).
    pub async fn start(target: &str) -> Cut {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind forwarder");
        let addr = listener.local_addr().expect("forwarder address");
        let target: SocketAddr = target.parse().expect("target address");
        let enabled = Arc::new(AtomicBool::new(true));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(gen_tx);
        let (en, gen) = (enabled.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !en.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = gen.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Cut {
            addr,
            enabled,
            generation,
            task,
        }
    }

    /// `127.0.0.1:PORT` of the forwarder.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Drops every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.generation.send_modify(|g| *g += 1);
        self.task.abort();
    }
}

/// A TCP forwarder on loopback that a test can make deaf: requests still
/// reach etcd (so a transaction applies) but its answers are dropped, as
/// when a connection dies just after sending. [`Mute::heal`] drops the
/// connections so that the client reconnects and is answered again.
pub struct Mute {
    muted: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Mute {
    /// Forwards a fresh loopback port to `target` (`127.0.0.1:PORT`).
    pub async fn start(target: &str) -> Mute {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind forwarder");
        let addr = listener.local_addr().expect("forwarder address");
        let target: SocketAddr = target.parse().expect("target address");
        let muted = Arc::new(AtomicBool::new(false));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(gen_tx);
        let (m, gen) = (muted.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let (m, mut healed) = (m.clone(), gen.subscribe());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    let answers = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match ro.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if !m.load(Ordering::SeqCst) && wi.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        () = answers => {}
                        _ = healed.changed() => {}
                    }
                });
            }
        });
        Mute {
            muted,
            generation,
            addr,
            task,
        }
    }

    /// `127.0.0.1:PORT` of the forwarder.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// From now on etcd's answers are dropped.
    pub fn mute(&self) {
        self.muted.store(true, Ordering::SeqCst);
    }

    /// Answers pass again, on fresh connections.
    pub fn heal(&self) {
        self.muted.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        self.generation.send_modify(|g| *g += 1);
        self.task.abort();
    }
}

/// The outcome of [`place`].
#[derive(Debug)]
pub struct Placed {
    pub decision: Result<flocker_core::Decision, flocker_core::DecisionError>,
    /// Saves lost to another writer before this one was saved.
    pub retries: u32,
    pub conflicts: Vec<String>,
}

/// Decide on the store's cached cluster and save, re-deciding after each
/// conflict, at most `max_retries` times; the library twin of `flocker place`.
pub async fn place<S: flocker_host::store::Store>(
    store: &S,
    request: &serde_json::Value,
    max_retries: u32,
) -> Result<Placed, String> {
    use flocker_host::store::Saved;
    let mut conflicts = Vec::new();
    loop {
        let decision = {
            let cluster = store.cluster().await.map_err(|e| e.to_string())?;
            cluster.decide(request)
        };
        let route = match &decision {
            Ok(d) => d.route.clone(),
            Err(_) => None,
        };
        let Some(route) = route else {
            return Ok(Placed {
                decision,
                retries: conflicts.len() as u32,
                conflicts,
            });
        };
        match store
            .save_decision(&route)
            .await
            .map_err(|e| e.to_string())?
        {
            Saved::Saved => {
                return Ok(Placed {
                    decision,
                    retries: conflicts.len() as u32,
                    conflicts,
                })
            }
            Saved::Conflict(why) => {
                conflicts.push(why);
                if conflicts.len() as u32 > max_retries {
                    return Err(format!(
                        "still conflicting after {max_retries} retries: {}",
                        conflicts.join("; ")
                    ));
                }
            }
        }
    }
}

/// A demo inventory of `n` servers `n1..`, each on 10.0.0.i.
pub use flocker_core::fixtures::servers;

/// A store config on `endpoints` with short timeouts, for tests.
pub fn config(endpoints: Vec<String>, prefix: &str) -> flocker_host::store::etcd::EtcdConfig {
    let mut c = flocker_host::store::etcd::EtcdConfig::new(endpoints, prefix);
    c.connect_timeout = Duration::from_millis(500);
    c.request_timeout = Duration::from_secs(2);
    c
}

/// The `flocker` binary: `$FLOCKER_BIN`, else `target/debug/flocker` of
/// this workspace (`$CARGO_TARGET_DIR` when set at build time).
pub fn flocker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FLOCKER_BIN") {
        return PathBuf::from(p);
    }
    let target = option_env!("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug").join("flocker")
}

/// The `flocker` binary, checked to exist and to be newer than every file
/// cargo built it from (its dep-info, `flocker.d`), so that a test never
/// drives a stale build. Panics with the command that fixes it.
pub fn fresh_flocker_bin() -> PathBuf {
    let bin = flocker_bin();
    let fix = "build it first: cargo build -p flocker-host --bin flocker (or set FLOCKER_BIN)";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}; {fix}", bin.display()));
    if std::env::var_os("FLOCKER_BIN").is_some() {
        return bin;
    }
    let Ok(depinfo) = std::fs::read_to_string(bin.with_extension("d")) else {
        return bin;
    };
    // `target: dep dep ...`, spaces in paths escaped as `\ `.
    let deps = depinfo.split_once(": ").map_or("", |(_, d)| d);
    let mut path = String::new();
    let mut paths = Vec::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                path.push(' ');
                chars.next();
            }
            c if c.is_whitespace() => {
                if !path.is_empty() {
                    paths.push(std::mem::take(&mut path));
                }
            }
            c => path.push(c),
        }
    }
    if !path.is_empty() {
        paths.push(path);
    }
    for p in paths {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_file() {
            if let Ok(m) = meta.modified() {
                assert!(m <= built, "{} is older than {p}; {fix}", bin.display());
            }
        }
    }
    bin
}

/// What a `flocker` run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `flocker` ([`fresh_flocker_bin`]) with `args`, `stdin` as
/// its input, `FLOCKER_STORE` and `FLOCKER_ETCD_PASSWORD` removed, then
/// each `(name, Some(value))` of `env` set (`None` leaves it removed).
pub fn run_flocker(args: &[&str], stdin: &str, env: &[(&str, Option<&str>)]) -> Run {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let mut cmd = Command::new(BIN.get_or_init(fresh_flocker_bin));
    cmd.args(args)
        .env_remove("FLOCKER_STORE")
        .env_remove("FLOCKER_ETCD_PASSWORD");
    for (k, v) in env {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flocker (build it: cargo build -p flocker-host --bin flocker)");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait flocker");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Certificates from `tests/tls/make-certs.sh` in a temporary directory.
pub fn make_certs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("flocker-certs-")
        .tempdir()
        .expect("temporary directory");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tls/make-certs.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run make-certs.sh");
    assert!(
        out.status.success(),
        "make-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}
