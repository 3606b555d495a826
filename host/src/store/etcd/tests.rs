use super::*;

#[test]
fn keys_follow_spec_section_5_under_a_prefix() {
    let k = Keys::new("flocker/");
    assert_eq!(k.server("n1"), "/flocker/inventory/n1");
    assert_eq!(k.route("a.1"), "/flocker/routes/containers/a.1");
    assert_eq!(k.volume("pg"), "/flocker/routes/volumes/pg");
    assert_eq!(k.port("n1", 20000), "/flocker/ports/n1/20000");
    assert_eq!(k.kind("/flocker/routes/containers/a.1"), Kind::Route("a.1"));
    assert_eq!(k.kind("/flocker/inventory/n1"), Kind::Server("n1"));
    assert_eq!(k.kind("/flocker/ports/n1/20000"), Kind::Port("n1", 20000));
    assert_eq!(k.kind("/flocker/ports/n1/x"), Kind::Other);
    assert_eq!(k.answer("a.1"), "/flocker/routes/answers/a.1");
    assert_eq!(k.kind("/flocker/routes/answers/a.1"), Kind::Other);
    assert_eq!(k.kind("/flockerx/inventory/n1"), Kind::Other);
    let none = Keys::new("");
    assert_eq!(none.server("n1"), "/inventory/n1");
    assert_eq!(none.root(), "/");
    assert_eq!(none.kind("/routes/volumes/pg"), Kind::Volume("pg"));
    assert_eq!(none.kind("/routes/volumes/"), Kind::Other);
}

#[test]
fn diff_turns_one_cluster_into_the_other() {
    let old = Cluster::from_snapshot(&json!({
        "inventory": [{"hostname": "n1", "address": "a"}, {"hostname": "n2", "address": "b"}],
        "routes": {"containers": {"x.1": {"server": "n1"}, "y.1": {"server": "n2"}},
                   "volumes": {"pg": "n1", "old": "n2"}}
    }))
    .unwrap();
    let new = Cluster::from_snapshot(&json!({
        "inventory": [{"hostname": "n1", "address": "a2"}, {"hostname": "n3", "address": "c"}],
        "routes": {"containers": {"x.1": {"server": "n1", "state": "removed"}, "z.1": {"server": "n3"}},
                   "volumes": {"pg": "n3"}}
    }))
    .unwrap();
    let mut c = old.clone();
    for change in old.changes_to(&new) {
        c.apply_change(change);
    }
    assert_eq!(c.to_snapshot(), new.to_snapshot());
}

fn next_port_on_n1(c: &Cluster) -> u64 {
    let d = c
        .decide(&json!({"name": "probe.1", "container": {"Image": "x",
            "Env": ["VIKING_SERVER=n1"], "ExposedPorts": {"80/tcp": {}}}}))
        .unwrap();
    d.to_value()["route"]["ports"]["80/tcp"].as_u64().unwrap()
}

fn live(name: &str, port: u16, volumes: &[&str]) -> Route {
    Route::from_value(
        &json!({"name": name, "server": "n1", "ports": {"80/tcp": port}, "volumes": volumes}),
        None,
        "r",
    )
    .unwrap()
}

fn base() -> Cluster {
    Cluster::from_snapshot(&json!({
        "inventory": [{"hostname": "n1", "address": "a"}, {"hostname": "n2", "address": "b"}],
        "routes": {"containers": {"a.1": {"server": "n1", "ports": {"80/tcp": 20000}}},
                   "volumes": {"pg": "n2"}}
    }))
    .unwrap()
}

#[test]
fn a_save_in_flight_is_seen_by_decisions_and_comes_off_exactly() {
    let mut cache = Cache::new();
    cache.cluster = Twin::new(base());
    assert_eq!(next_port_on_n1(&cache.cluster), 20001);
    let b = live("b.1", 20001, &["data:/d"]);
    let id = cache.add_pending(&b);
    assert_eq!(next_port_on_n1(&cache.cluster), 20002);
    assert_eq!(cache.cluster.volume_server("data"), Some("n1"));
    assert_eq!(cache.stored_route("b.1"), None);
    assert_eq!(cache.stored_volume("data"), None);
    // Meanwhile another host took port 20001: this save loses.
    let c = live("c.1", 20001, &[]);
    cache.apply_stored(&Change::SaveRoute(c.clone()));
    cache.end_pending(id);
    let mut want = base();
    want.apply_change(Change::SaveRoute(c));
    assert_eq!(cache.cluster.to_snapshot(), want.to_snapshot());
    // c.1 still holds 20001 although the overlay held it too.
    assert_eq!(next_port_on_n1(&cache.cluster), 20002);
}

#[test]
fn a_saved_overlay_gives_way_to_the_watched_record() {
    let mut cache = Cache::new();
    cache.cluster = Twin::new(base());
    let b = live("b.1", 20001, &["data:/d"]);
    let id = cache.add_pending(&b);
    // The watch brings the save back before it ends.
    cache.apply_stored(&Change::ClaimVolume {
        volume: "data".into(),
        server: "n1".into(),
    });
    cache.apply_stored(&Change::SaveRoute(b.clone()));
    assert_eq!(cache.stored_route("b.1"), Some(&b));
    cache.end_pending(id);
    let mut want = base();
    want.apply_change(Change::ClaimVolume {
        volume: "data".into(),
        server: "n1".into(),
    });
    want.apply_change(Change::SaveRoute(b));
    assert_eq!(cache.cluster.to_snapshot(), want.to_snapshot());
    assert_eq!(next_port_on_n1(&cache.cluster), 20002);
}

/// Applies the changes the cache sent to [`Store::changes`] to each follower.
fn follow(followers: &mut [&mut Cluster], cache: &mut Cache) {
    for change in cache.outbox.drain(..) {
        for f in followers.iter_mut() {
            f.apply_change(change.clone());
        }
    }
}

#[test]
fn the_feed_carries_saves_in_flight_and_takes_a_lost_one_back() {
    let mut cache = Cache::new();
    cache.cluster = Twin::new(base());
    let mut follower = base();
    let id = cache.add_pending(&live("b.1", 20001, &["data:/d"]));
    follow(&mut [&mut follower], &mut cache);
    // A module's resident state counts the save in flight as the cache does.
    assert_eq!(next_port_on_n1(&follower), 20002);
    assert_eq!(follower.to_snapshot(), cache.cluster.to_snapshot());
    // A state rebuilt now copies the overlay.
    let mut rebuilt = (*cache.cluster).clone();
    // Another host took 20001 meanwhile: this save loses, and both are
    // told to drop it.
    cache.apply_stored(&Change::SaveRoute(live("c.1", 20001, &[])));
    cache.end_pending(id);
    follow(&mut [&mut follower, &mut rebuilt], &mut cache);
    for f in [&follower, &rebuilt] {
        assert_eq!(f.to_snapshot(), cache.cluster.to_snapshot());
        assert!(f.route("b.1").is_none(), "no phantom b.1");
        assert_eq!(f.volume_server("data"), None);
    }
}
