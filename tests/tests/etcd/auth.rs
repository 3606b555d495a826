//! etcd with TLS (`--client-cert-auth`) and users: the store and the real
//! `flocker` binary with the right certificate and password, and each
//! refusal, which exits 3 at once with a message saying what to fix and
//! never shows the password.

use std::path::Path;
use std::time::{Duration, Instant};

use flocker_host::store::etcd::EtcdStore;
use flocker_host::store::url::{ClientCert, EtcdTls, Password};
use flocker_host::store::{Store, StoreError};
use flocker_tests::etcd::{config, dump, make_certs, run_flocker, servers, Etcd, EtcdOptions, Run};
use serde_json::{json, Value};

const PASSWORD: &str = "flocker-pw-7c1e";
const ROOT_PASSWORD: &str = "root-pw-93ad";
const WRONG: &str = "not-the-pw-51f0";

/// One TLS member with auth on: `flocker` may read and write `/flocker/` only.
fn secured(certs: &Path, ttl: Option<u32>) -> Etcd {
    let mut etcd = Etcd::start_with(
        1,
        EtcdOptions {
            tls: Some(certs.to_path_buf()),
            auth_token_ttl: ttl,
        },
    );
    etcd.enable_auth(ROOT_PASSWORD, &[("flocker", PASSWORD, "/flocker/")]);
    etcd
}

/// `etcds://USER@EP/PREFIX?cacert=..&cert=..&key=..` from a certificate directory.
fn url(etcd: &Etcd, user: &str, prefix: &str, ca: &Path, client: Option<&Path>) -> String {
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    let mut u = format!(
        "etcds://{user}{}{prefix}?cacert={}",
        etcd.endpoint(0),
        ca.join("ca.pem").display()
    );
    if let Some(c) = client {
        u.push_str(&format!(
            "&cert={}&key={}",
            c.join("cert.pem").display(),
            c.join("key.pem").display()
        ));
    }
    u
}

fn flocker(args: &[&str], stdin: &str, password: Option<&str>) -> Run {
    let r = run_flocker(args, stdin, &[("FLOCKER_ETCD_PASSWORD", password)]);
    for secret in [PASSWORD, ROOT_PASSWORD, WRONG] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{args:?} printed a password: {r:?}"
        );
    }
    r
}

/// The store config the CLI would build from [`url`], with test timeouts.
fn store_config(etcd: &Etcd, certs: &Path) -> flocker_host::store::etcd::EtcdConfig {
    let mut c = config(etcd.endpoints(), "/flocker");
    c.tls = Some(EtcdTls {
        cacert: Some(certs.join("ca.pem")),
        identity: Some(ClientCert {
            cert: certs.join("cert.pem"),
            key: certs.join("key.pem"),
        }),
    });
    c.user = Some(("flocker".into(), Password::new(PASSWORD)));
    c
}

async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_password_work_through_the_store_and_the_cli() {
    let certs = make_certs();
    let certs = certs.path();
    let etcd = secured(certs, None);
    let u = url(&etcd, "flocker", "/flocker", certs, Some(certs));

    // A host following the store; the CLI below is a second writer.
    let watcher = EtcdStore::connect(store_config(&etcd, certs))
        .await
        .expect("connect with TLS and a password");
    assert_eq!(
        watcher.cluster().await.expect("cluster").servers().count(),
        0
    );

    let inventory =
        json!([{"hostname": "n1", "address": "10.0.0.1", "port_range": [20000, 20009]}]);
    let r = flocker(
        &["inventory", "add", "--store", &u],
        &inventory.to_string(),
        Some(PASSWORD),
    );
    assert_eq!(r.code, 0, "inventory add: {r:?}");
    assert!(
        eventually(Duration::from_secs(5), async || {
            watcher
                .cluster()
                .await
                .is_ok_and(|c| c.servers().count() == 1)
        })
        .await,
        "the watcher never saw the CLI's server"
    );

    let req =
        json!({"name": "web.1", "container": {"Image": "nginx", "ExposedPorts": {"80/tcp": {}}}});
    let r = flocker(&["place", "--store", &u], &req.to_string(), Some(PASSWORD));
    assert_eq!(r.code, 0, "place: {r:?}");
    let decision: Value = serde_json::from_str(&r.stdout).expect("decision JSON");
    assert_eq!(decision["route"]["server"], "n1", "{decision}");

    let r = flocker(
        &["routes", "ls", "--json", "--store", &u],
        "",
        Some(PASSWORD),
    );
    assert_eq!(r.code, 0, "routes ls: {r:?}");
    assert!(r.stdout.contains("web.1"), "{}", r.stdout);
    assert!(
        eventually(Duration::from_secs(5), async || {
            watcher
                .cluster()
                .await
                .is_ok_and(|c| c.routes().count() == 1)
        })
        .await,
        "the watcher never saw the CLI's route"
    );

    // The library's own writes land where root sees them.
    watcher.put_servers(&servers(2)).await.expect("put servers");
    let keys = dump(&etcd.client().await, "/flocker").await;
    assert!(keys.contains_key("/flocker/inventory/n2"), "{keys:?}");
    assert!(
        keys.contains_key("/flocker/routes/containers/web.1"),
        "{keys:?}"
    );

    // No user: etcd takes the client certificate's CN (flocker) as the user.
    let cn = url(&etcd, "", "/flocker", certs, Some(certs));
    let r = flocker(&["routes", "ls", "--store", &cn], "", None);
    assert_eq!(r.code, 0, "routes ls as the certificate's CN: {r:?}");
    assert!(r.stdout.contains("web.1"), "{}", r.stdout);
}

/// Runs `routes ls` and `inventory add` on `u` and checks both exit 3 at
/// once with `says` on stderr.
fn refused(u: &str, password: Option<&str>, says: &str) {
    for (args, stdin) in [
        (vec!["routes", "ls", "--store", u], ""),
        (
            vec!["inventory", "add", "--store", u],
            r#"{"hostname": "x", "address": "10.0.0.9"}"#,
        ),
    ] {
        let start = Instant::now();
        let r = flocker(&args, stdin, password);
        let took = start.elapsed();

        assert_eq!(r.code, 3, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(says),
            "{args:?}: expected {says:?} in {:?}",
            r.stderr
        );
        // A refusal is not retried until the request timeout (5 s).
        assert!(
            took < Duration::from_secs(4),
            "{args:?} took {took:?}: {r:?}"
        );
    }
}

#[test]
fn each_refusal_exits_3_at_once_and_says_what_to_fix() {
    let certs = make_certs();
    let certs = certs.path();
    let other = certs.join("other");
    let etcd = secured(certs, None);

    let good = url(&etcd, "flocker", "/flocker", certs, Some(certs));
    refused(&good, Some(WRONG), "authentication failed for user flocker");
    refused(
        &url(&etcd, "flocker", "/flocker", certs, None),
        Some(PASSWORD),
        "TLS handshake was refused",
    );
    refused(
        &url(&etcd, "flocker", "/flocker", certs, Some(&other)),
        Some(PASSWORD),
        "TLS handshake was refused",
    );
    refused(
        &url(&etcd, "flocker", "/flocker", &other, Some(certs)),
        Some(PASSWORD),
        "server certificate was not trusted",
    );
    refused(
        &url(&etcd, "flocker", "/other", certs, Some(certs)),
        Some(PASSWORD),
        "permission denied: user flocker may not",
    );
    refused(
        &url(&etcd, "flocker", "/other", certs, Some(certs)),
        Some(PASSWORD),
        "under the key prefix /other/",
    );
    let missing = good.replace("key.pem", "no-such-key.pem");
    refused(&missing, Some(PASSWORD), "no-such-key.pem");
    let r = flocker(
        &["routes", "ls", "--store", &format!("{good}&ignored=1")],
        "",
        Some(PASSWORD),
    );
    assert_eq!(r.code, 2, "an unknown query key is a usage error: {r:?}");
    assert!(r.stderr.contains("ignored"), "{r:?}");
    let not_pem = format!(
        "etcds://flocker@{}/flocker?cacert={}",
        etcd.endpoint(0),
        certs.join("key.pem").display()
    );
    refused(&not_pem, Some(PASSWORD), "no PEM certificate");

    // The scheme does not match what etcd serves, either way.
    refused(
        &format!("etcd://flocker@{}/flocker", etcd.endpoint(0)),
        Some(PASSWORD),
        "if it serves TLS, use etcds://",
    );
    let plain = Etcd::start();
    refused(
        &url(&plain, "", "/flocker", certs, None),
        None,
        "etcd does not serve TLS there",
    );

    // Usage errors: the password not set, or put in the URL.
    let r = flocker(&["routes", "ls", "--store", &good], "", None);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("FLOCKER_ETCD_PASSWORD"), "{r:?}");
    let in_url = good.replace("flocker@", &format!("flocker:{PASSWORD}@"));
    let r = flocker(&["routes", "ls", "--store", &in_url], "", Some(PASSWORD));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("FLOCKER_ETCD_PASSWORD"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_auth_token_is_renewed() {
    let certs = make_certs();
    let certs = certs.path();
    let etcd = secured(certs, Some(1));
    let store = EtcdStore::connect(store_config(&etcd, certs))
        .await
        .expect("connect");
    store.put_servers(&servers(1)).await.expect("first write");
    // etcd drops a simple token after --auth-token-ttl seconds unused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    store
        .put_servers(&servers(2))
        .await
        .expect("a write after the token expired");
    assert!(store
        .remove_server("n2")
        .await
        .expect("remove after expiry"));

    // A wrong password fails at connect as Denied, not Unavailable.
    let mut c = store_config(&etcd, certs);
    c.user = Some(("flocker".into(), Password::new(WRONG)));
    let err = EtcdStore::connect(c)
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(matches!(err, StoreError::Denied { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(WRONG), "{err:?}");
}
