//! The file store on a bad day (issue 11, F13), through the CLI: one
//! unreadable record is that record's error, not the whole store's.

use serde_json::json;

use crate::common::{ok, place, seed, Scratch};

const ROUTES: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("routes");

#[test]
fn a_record_that_is_not_json_leaves_the_rest_of_the_store_working() {
    let s = Scratch::new("bad-record");
    let store = seed(&s, &json!([{"hostname": "n1", "address": "10.0.0.1"}]));
    {
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .open(s.path("store.redb"))
            .expect("open the store file");
        let txn = db.begin_write().expect("write");
        txn.open_table(ROUTES)
            .expect("routes")
            .insert("broken.1", "{not json")
            .expect("insert");
        txn.commit().expect("commit");
    }
    let out = place(
        &store,
        &json!({"name": "web.1", "container": {"Image": "nginx"}}),
        0,
    );
    assert_eq!(out["route"]["server"], "n1");
    let listed = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    assert!(listed["containers"].get("web.1").is_some(), "{listed}");
    let check = ok(&["store", "check", "--store", &store], None, 1);
    assert!(
        check.stdout.contains("/routes/containers/broken.1"),
        "{check:?}"
    );
}

/// A 16 MiB tmpfs mounted for one test, unmounted on drop.
struct SmallDisk(Scratch);

impl SmallDisk {
    fn mount() -> SmallDisk {
        let s = Scratch::new("enospc");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(s.dir())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a 16 MiB tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(s)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.dir())
            .status();
    }
}

/// Fills the filesystem of `path` with one file; returns its path.
fn fill(path: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = path.join("filler");
    let mut f = std::fs::File::create(&filler).expect("create filler");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    filler
}

#[test]
fn serve_recovers_after_the_disk_fills_and_space_is_freed() {
    let disk = SmallDisk::mount();
    let store = seed(&disk.0, &json!([{"hostname": "n1", "address": "10.0.0.1"}]));
    let server = crate::common::serve::Server::start(&["--store", &store, "--engine", "native"]);
    let big = "x".repeat(4000);
    let request = |i: usize| json!({"name": format!("app.{i}"), "container": {"Image": "app", "Env": [format!("PAD={big}")]}});
    let (status, _) = server.post("/v1/place", &request(0));
    assert_eq!(status, 200);
    let filler = fill(disk.0.dir());
    let mut failed = None;
    for i in 1..4000 {
        let (status, body) = server.post("/v1/place", &request(i));
        if status != 200 {
            failed = Some((i, status, body));
            break;
        }
    }
    let (at, status, body) = failed.expect("a place failed once the disk was full");
    assert_eq!(status, 503, "place {at} on a full disk: {body}");
    std::fs::remove_file(filler).expect("free the space");
    let (status, body) = server.post("/v1/place", &request(at));
    assert_eq!(status, 200, "after freeing space: {body}");
    let (status, body) = server.post("/v1/place", &request(at + 1));
    assert_eq!(status, 200, "{body}");
    drop(server);
    ok(&["store", "check", "--store", &store], None, 0);
}
