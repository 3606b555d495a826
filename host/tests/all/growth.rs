//! Bounded growth (issue 11, F12): `routes prune`, `volumes ls | rm`, and
//! `flocker bench` keeping out of a real store (F20).

use serde_json::{json, Value};

use crate::common::{ok, place, run, seed, Scratch};

fn db(name: &str) -> Value {
    json!({"name": name, "container": {"Image": "pg", "HostConfig": {"Binds": ["pgdata:/var/lib/pg"]}},
           "image": {"Config": {"ExposedPorts": {"5432/tcp": {}}}}})
}

#[test]
fn prune_forgets_removed_routes_and_volumes_rm_releases_a_claim() {
    let s = Scratch::new("prune");
    let store = seed(&s, &json!([{"hostname": "n1", "address": "10.0.0.1"}]));
    let first = place(&store, &db("db.1"), 0);
    assert_eq!(first["route"]["server"], "n1");
    ok(&["routes", "rm", "--store", &store, "db.1"], None, 0);
    let recent = ok(
        &["routes", "prune", "--store", &store, "--older-than", "1h"],
        None,
        0,
    );
    assert!(recent.stdout.contains("pruned 0 "), "{recent:?}");
    let pruned = ok(&["routes", "prune", "--store", &store], None, 0);
    assert!(
        pruned.stdout.contains("pruned 1 removed route"),
        "{pruned:?}"
    );
    let routes = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(routes["containers"], json!({}));
    // The claim that pins pgdata to n1 stays until released.
    let vols = ok(&["volumes", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(vols, json!({"pgdata": {"server": "n1", "used_by": []}}));
    place(&store, &db("db.2"), 0);
    let in_use = ok(&["volumes", "rm", "--store", &store, "pgdata"], None, 1);
    assert!(
        in_use.stderr.contains("used by live route db.2"),
        "{in_use:?}"
    );
    ok(&["routes", "rm", "--store", &store, "db.2"], None, 0);
    let released = ok(&["volumes", "rm", "--store", &store, "pgdata"], None, 0);
    assert!(released.stdout.contains("released pgdata"), "{released:?}");
    let none = ok(&["volumes", "rm", "--store", &store, "pgdata"], None, 1);
    assert!(
        none.stderr.contains("no volume claim named pgdata"),
        "{none:?}"
    );
    ok(&["store", "check", "--store", &store], None, 0);
    let bad = ok(
        &["routes", "prune", "--store", &store, "--older-than", "soon"],
        None,
        2,
    );
    assert!(bad.stderr.contains("not a duration"), "{bad:?}");
}

#[test]
fn decisions_with_the_module_keep_working_after_many_removed_routes_are_pruned() {
    let s = Scratch::new("prune-many");
    let store = seed(&s, &json!([{"hostname": "n1", "address": "10.0.0.1"}]));
    for i in 0..40 {
        place(&store, &db(&format!("db.{i}")), 0);
        ok(
            &["routes", "rm", "--store", &store, &format!("db.{i}")],
            None,
            0,
        );
    }
    ok(&["routes", "prune", "--store", &store], None, 0);
    let out = ok(
        &["place", "--engine", "wasm", "--store", &store],
        Some(&db("db.new").to_string()),
        0,
    )
    .json();
    assert_eq!(out["route"]["state"], "live");
    let routes = ok(&["routes", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(routes["containers"].as_object().map(|m| m.len()), Some(1));
}

#[test]
fn bench_refuses_a_store_with_real_servers_and_cleans_up_a_scratch_one() {
    let s = Scratch::new("bench-guard");
    let store = seed(&s, &json!([{"hostname": "real1", "address": "10.0.0.1"}]));
    let args = [
        "bench",
        "--store",
        &store,
        "--count",
        "20",
        "--servers",
        "2",
    ];
    let refused = ok(&args, None, 2);
    assert!(refused.stderr.contains("real1"), "{refused:?}");
    let inv = ok(&["inventory", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(inv.as_array().map(Vec::len), Some(1), "{inv}");
    // A store of its own: bench writes, then removes what it wrote.
    let scratch = format!("file:{}", s.path("bench.redb").display());
    let report = ok(
        &[
            "bench",
            "--store",
            &scratch,
            "--count",
            "20",
            "--servers",
            "2",
        ],
        None,
        0,
    );
    assert!(report.stdout.contains("places_per_second"), "{report:?}");
    let inv = ok(&["inventory", "ls", "--store", &scratch, "--json"], None, 0).json();
    assert_eq!(inv, json!([]));
    let routes = ok(&["routes", "ls", "--store", &scratch, "--json"], None, 0).json();
    assert_eq!(routes["containers"], json!({}));
    // Forced into the real store, it leaves the real server alone.
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced, None, 0);
    let inv = ok(&["inventory", "ls", "--store", &store, "--json"], None, 0).json();
    assert_eq!(inv.as_array().map(Vec::len), Some(1), "{inv}");
}

#[test]
fn size_flags_that_would_overflow_are_usage_errors() {
    for flag in [
        ["decide", "--memory-mib", "18446744073709551615"],
        ["decide", "--memory-mib", "17592186044416"],
    ] {
        let r = run(&flag, Some("{}"));
        assert_eq!(r.code, 2, "{flag:?}: {r:?}");
    }
}
